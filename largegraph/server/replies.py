"""The shapes of the API's requests and replies under ``/v1``: each route's ``response_model``, so
that ``/v1/openapi.json`` describes a job (:class:`largegraph.jobs.views.JobView`) and every reply."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from largegraph.jobs.views import AttemptView, JobView


class ErrorReply(BaseModel):
    """The one shape of every error: a single line saying what is wrong and how to fix it."""

    error: str


class SubmitRequest(BaseModel):
    """A job to queue: a YAML job file's text plus dotted overrides, as `largegraph submit` takes them."""

    model_config = ConfigDict(extra="forbid")

    config: str = Field(description="the YAML job file's text")
    overrides: list[str] = Field(default_factory=list, max_length=256, description="dotted key=value overrides")
    source: str = Field("config", max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$",
                        description="the file's name, used only in error messages")
    name: str | None = Field(None, description="job name (default: the config's name plus the job id)")
    priority: int = Field(0, ge=-1_000_000, le=1_000_000)
    retries: int = Field(2, ge=0, le=1000)
    nproc: int = Field(1, ge=1, le=1024)
    device: Literal["cpu", "cuda"] = "cpu"
    max_restarts: int | None = Field(None, ge=0, le=1000)
    # What a job may ask of a cluster scheduler; sbatch flags are the operator's (serve --sbatch-flag)
    # and, like any unknown field, refused here.
    nodes: int = Field(1, ge=1, le=4096)
    partition: str | None = Field(None, max_length=1040)
    time_limit: str | None = Field(None, max_length=32)


class JobReply(BaseModel):
    """One job, after the request."""

    job: JobView


class JobList(BaseModel):
    """Jobs in submission order; ``next``, if set, is what to pass as ``after`` for the next page."""

    jobs: list[JobView]
    next: int | None = None


class JobDetail(BaseModel):
    """One job with every attempt at running it and its resolved config (YAML text)."""

    job: JobView
    attempts: list[AttemptView]
    config: str


class MetricsReply(BaseModel):
    """Records of the run's metrics file; ``next`` is what to pass as ``since`` for newer ones."""

    records: list[dict]
    next: int
    state: str
