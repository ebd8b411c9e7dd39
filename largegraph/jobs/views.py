"""What the job service shows of a job, in one typed shape, and the lines its commands print.

:class:`JobView` is the one description of a job outside the store: ``status --json`` prints it, the
HTTP API answers it (and documents it in its OpenAPI schema), and the remote CLI parses the server's
replies into it. The text helpers here are shared by the local and the remote implementations of
:class:`largegraph.jobs.service.JobService`, so both print exactly the same.
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

from pydantic import BaseModel, ConfigDict

from largegraph.core.errors import JobError
from largegraph.jobs.schema import FINAL_STATES, Job


class JobView(BaseModel):
    """One job as the service shows it: its identity, its state and progress, and its times (Unix seconds).

    The field order is the order of ``status --json``'s keys.
    """

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    task: str
    state: str
    attempt: int
    max_retries: int
    failures: int
    priority: int
    nproc: int
    device: str
    run_dir: str
    epoch: Optional[int]
    epochs: Optional[int]
    step: Optional[int]
    metric: Optional[str]
    last_metric: Optional[float]
    best_metric: Optional[float]
    resumes: int
    pid: Optional[int]
    exit_code: Optional[int]
    last_error: Optional[str]
    cancel_requested: bool
    submitted_at: float
    started_at: Optional[float]
    finished_at: Optional[float]
    heartbeat_at: Optional[float]
    not_before: float

    @classmethod
    def of(cls, job: Job) -> "JobView":
        """The view of a store row."""
        return cls.model_validate({name: getattr(job, name) for name in cls.model_fields})

    @property
    def is_final(self) -> bool:
        """Whether the job has ended (succeeded, failed or cancelled): it will not change again."""
        return self.state in FINAL_STATES


class AttemptView(BaseModel):
    """One attempt at running a job: which daemon and process ran it, when, and how it ended."""

    job_id: int
    attempt: int
    daemon_id: Optional[str]
    pid: Optional[int]
    started_at: float
    ended_at: Optional[float]
    exit_code: Optional[int]
    outcome: Optional[str]


# --- what the commands print -------------------------------------------------------------------------
# C0 and C1 control characters and DEL: what a job or a request wrote must not move the terminal's
# cursor, clear its screen or forge a line of output.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """``text`` with its control characters written as escapes (``\\n``, ``\\x1b``), for the terminal."""
    return _CONTROLS.sub(lambda m: repr(m.group())[1:-1], str(text))


def submitted_line(job: JobView) -> str:
    """What `submit` prints for a queued job."""
    return printable(f"submitted {job.name} (id {job.id}, {job.task}, priority {job.priority}, "
            f"retries {job.max_retries}); run dir {job.run_dir}")


def cancelled_line(job: JobView) -> str:
    """What `cancel` prints for a job once its cancel was asked for."""
    if job.state == "cancelled":
        return f"cancelled {printable(job.name)}"
    return f"cancel requested for {printable(job.name)} (running; its daemon stops all of its processes)"


def no_output_yet(name: str, state: str) -> str:
    """What `logs` says about a job that has written nothing yet."""
    return printable(f"largegraph: job {name} has no output yet (state {state})")


def check_shared_file(name: str) -> None:
    """Refuse a name that is not one of the files a run hands out (no paths, ever)."""
    from largegraph.training.rundir import RunDir  # not at import time: it pulls in the config schema

    if name not in RunDir.SHARED_FILES:
        raise JobError(f"no file {name!r} to fetch: ask for one of {', '.join(sorted(RunDir.SHARED_FILES))}")


def missing_file(job: Job | JobView, name: str) -> str:
    """What `fetch` and the API say of a file the run has not written."""
    return (f"job {job.name} has no {name} yet (state {job.state}; a run writes model.pt, predictions and "
            "curves.png when it finishes)")


def status_lines(jobs: Sequence[JobView], now: float) -> list[str]:
    """`status`'s text: the table, then the last error line of each failed or waiting job."""
    lines = [format_table(jobs, now)]
    lines += [printable(f"  {j.name}: {j.last_error}")
              for j in jobs if j.state in ("failed", "queued") and j.last_error]
    return lines


def format_table(jobs: Sequence[JobView], now: float) -> str:
    """The `status` table: id, name, task, state, attempt, epoch/step, best metric, age."""
    header = ("ID", "NAME", "TASK", "STATE", "ATTEMPT", "EPOCH/STEP", "BEST", "AGE")
    rows = [header]
    for j in jobs:
        progress = f"{j.epoch or 0}/{j.epochs or '?'} ({j.step or 0})" if j.epoch is not None else "-"
        best = f"{j.metric} {j.best_metric:.4f}" if j.best_metric is not None else "-"
        task = {"node_classification": "node", "link_prediction": "link"}.get(j.task, j.task)
        rows.append((str(j.id), j.name, task, _state(j, now), str(j.attempt), progress, best,
                     _age(now - j.submitted_at)))
    return aligned(rows) if jobs else "no jobs"


def aligned(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as left-aligned columns two spaces apart (``status``, ``token list``), control
    characters escaped."""
    rows = [[printable(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _state(job: JobView, now: float) -> str:
    if job.state == "queued" and job.not_before > now:
        return f"queued (retry in {job.not_before - now:.0f}s)"
    if job.state == "running" and job.cancel_requested:
        return "cancelling"
    return job.state
