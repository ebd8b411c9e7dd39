"""The JSON API under ``/v1``: queue, list, inspect, follow and cancel jobs, fetch their files.

Every route needs a token (see :mod:`largegraph.server.auth`). Jobs are queued through the same
validation and the same code as ``largegraph submit`` (:mod:`largegraph.jobs.submission`); the
daemon picks them up from the store as it does any other job. Logs and files are read only from
the job's own run directory, by names from a fixed list, never from a path in the request.
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from pathlib import Path
from typing import AsyncIterator, BinaryIO, Iterator, Literal

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from largegraph.core.errors import ConfigError, JobError
from largegraph.jobs.progress import RunFileRefused, open_run_file, read_bytes_from, read_metrics, run_file_size
from largegraph.jobs.store import STATES, Job
from largegraph.jobs.submission import SubmitOptions, pin_data_root, queue_job
from largegraph.jobs.views import AttemptView, JobView, check_shared_file, missing_file
from largegraph.jobs.workspace import check_job_name
from largegraph.server.limits import check_overrides, check_yaml_depth
from largegraph.training.rundir import RunDir
from largegraph.server.settings import ServerSettings
from largegraph.server.auth import Caller
from largegraph.server.replies import ErrorReply, JobDetail, JobList, JobReply, MetricsReply, SubmitRequest

log = logging.getLogger("largegraph.server")

# The files of a run directory the API hands out, by name; nothing else is ever opened for a request.
_TEXT = "text/plain; charset=utf-8"
_MEDIA = {RunDir.SUMMARY: "application/json", RunDir.CURVES: "image/png", RunDir.CONFIG: _TEXT,
          RunDir.METRICS: _TEXT, RunDir.LOG: _TEXT}
ARTIFACTS = {name: _MEDIA.get(name, "application/octet-stream") for name in RunDir.SHARED_FILES}
LOG_CHUNK = 1 << 20      # most bytes one ranged read or one streamed piece carries
PAGE = 1000             # most jobs one GET /v1/jobs answers
FOLLOW_POLL_S = 0.5      # how often a followed log and its job's state are looked at


def caller(request: Request) -> Caller:
    """The route dependency that demands a valid token (and, for the page's cookie, the CSRF check)."""
    return request.app.state.auth.require(request)


# Statuses any route may answer besides its own success, so that clients generated from the
# OpenAPI description expect them.
ERRORS = {
    400: "bad input: an invalid config, override, job name or file name",
    401: "missing, unknown or revoked token",
    403: "cross-site request refused (a signed-in page without its CSRF header)",
    404: "no such job, or the run has not written that file yet",
    409: "conflict: the name is taken, or the job already ended",
    408: "request body not received in time",
    413: "request body larger than serve --max-body",
    429: "the token already has serve --max-queued jobs waiting",
    503: "the job store is busy, or the server is at serve --max-connections",
}
router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[Depends(caller)],
                   responses={status: {"model": ErrorReply, "description": what} for status, what in ERRORS.items()})


def settings_of(request: Request) -> ServerSettings:
    return request.app.state.settings


def checked_ref(ref: str) -> str:
    """A job reference from a URL: an id, or a name in the job-name alphabet (no '/', no '..')."""
    if ref.isascii() and ref.isdigit() and len(ref) <= 18:
        return ref
    return check_job_name(ref)


def run_dir_of(job: Job, settings: ServerSettings) -> RunDir:
    """The job's run directory, provided it lies inside the workspace's runs/ (it always should)."""
    runs = os.path.realpath(settings.workspace.runs_dir)
    real = os.path.realpath(job.run_dir)
    if os.path.commonpath([runs, real]) != runs or real == runs:
        raise JobError(f"job {job.name}'s run directory is outside the workspace; refusing to read it")
    return RunDir(real)


def check_data_root(cfg, allowed: list[Path], source: str) -> None:
    """Refuse a config whose dataset lies outside the server's data roots (symlinks resolved)."""
    root = pin_data_root(cfg)
    paths = [os.path.realpath(root), os.path.realpath(root / cfg.data.name)]
    _check_distdgl(cfg, allowed, source)
    for base in map(str, allowed):
        if all(os.path.commonpath([base, p]) == base for p in paths):
            return
    raise ConfigError(f"{source}: data.root {root} with data.name {cfg.data.name!r} is outside the server's data "
                      f"roots ({', '.join(map(str, allowed))}); put the dataset under one of them "
                      "(serve --data-root DIR)")


def _check_distdgl(cfg, allowed: list[Path], source: str) -> None:
    """A distdgl job reads its partitions and machine list only under the data roots, and never
    names the command that reaches other machines: that would be code from a request."""
    from largegraph.config import DistributedConfig

    dc = cfg.distributed
    if dc.remote_shell != DistributedConfig.model_fields["remote_shell"].default:
        raise ConfigError(f"{source}: distributed.remote_shell cannot be set through the API; it is a command "
                          f"the server would run (set it in a job submitted on the server's host)")
    for key, path in (("distributed.part_config", dc.part_config), ("distributed.ip_config", dc.ip_config)):
        if path and not any(os.path.commonpath([str(base), os.path.realpath(path)]) == str(base) for base in allowed):
            raise ConfigError(f"{source}: {key} {path} is outside the server's data roots "
                              f"({', '.join(map(str, allowed))}); put it under one of them (serve --data-root DIR)")


def _finite(value):
    """JSON has no NaN or infinity: a diverged loss is sent as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- routes ------------------------------------------------------------------------------------------
@router.post("/jobs", status_code=201, summary="Queue a job")
def submit(body: SubmitRequest, request: Request, who: Caller = Depends(caller)) -> JobReply:
    """Validate the config exactly as `largegraph submit` does, check that it reads data only under the
    server's data roots, and queue it. Answers the job's record."""
    from largegraph.config import apply_overrides, build_config, parse_yaml

    settings = settings_of(request)
    options = SubmitOptions(name=body.name, priority=body.priority, retries=body.retries, nproc=body.nproc,
                            device=body.device, max_restarts=body.max_restarts, nodes=body.nodes,
                            partition=body.partition, time_limit=body.time_limit)
    check_yaml_depth(body.config, body.source)
    check_overrides(body.overrides)
    cfg = build_config(apply_overrides(parse_yaml(body.config, body.source), body.overrides), body.source)
    check_data_root(cfg, settings.data_roots, body.source)
    with settings.store() as store:
        job = queue_job(settings.workspace, store, cfg, options, submitted_by=who.name,
                        max_queued=settings.max_queued)
    return JobReply(job=JobView.of(job))


@router.get("/jobs", summary="List jobs")
def list_jobs(request: Request, state: list[Literal[STATES]] = Query(default=[]),
              name: list[str] = Query(default=[], max_length=PAGE, description="names or ids"),
              after: int = Query(0, ge=0, le=(1 << 63) - 1, description="only jobs with a greater id"),
              limit: int = Query(PAGE, ge=1, le=PAGE, description="most jobs in one reply")) -> JobList:
    """Jobs in submission order, a page at a time (``next``: what to pass as ``after`` for the rest);
    ``state`` (repeatable) keeps only jobs in those states, ``name`` (repeatable) only those jobs (an
    unknown one is a 404, as for `largegraph status JOB`)."""
    with settings_of(request).store() as store:
        if name:
            return JobList(jobs=[JobView.of(j) for j in (store.get(checked_ref(ref)) for ref in name)
                                 if not state or j.state in state])
        page = store.jobs(after=after, limit=limit)
    jobs = [JobView.of(j) for j in page if not state or j.state in state]
    return JobList(jobs=jobs, next=page[-1].id if len(page) == limit else None)


@router.get("/jobs/{ref}", summary="One job, its attempts and its resolved config")
def get_job(ref: str, request: Request) -> JobDetail:
    with settings_of(request).store() as store:
        job = store.get(checked_ref(ref))
        attempts = [AttemptView.model_validate(a) for a in store.attempts(job.id)]
        return JobDetail(job=JobView.of(job), attempts=attempts, config=job.config)


@router.post("/jobs/{ref}/cancel", summary="Cancel a job")
def cancel(ref: str, request: Request) -> JobReply:
    """A queued job is cancelled at once; a running one is flagged, and its daemon stops it."""
    with settings_of(request).store() as store:
        return JobReply(job=JobView.of(store.request_cancel(checked_ref(ref))))


@router.get("/jobs/{ref}/metrics", summary="The run's metrics records")
def metrics(ref: str, request: Request,
            since: int = Query(0, ge=0, le=1 << 62, description="skip this many records")) -> MetricsReply:
    """The records of the run's ``metrics.jsonl`` (epochs, resumes, the final one) from number ``since``;
    ``next`` is what to pass as ``since`` to get only newer ones."""
    settings = settings_of(request)
    with settings.store() as store:
        job = store.get(checked_ref(ref))
    records = read_metrics(run_dir_of(job, settings).path)
    fresh = [{k: _finite(v) for k, v in r.items()} for r in records[since:]]
    return MetricsReply(records=fresh, next=len(records), state=job.state)


@router.get("/jobs/{ref}/logs", summary="The job's log, ranged or followed", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
def logs(ref: str, request: Request,
         offset: int = Query(0, ge=-(1 << 62), le=1 << 62,
                             description="first byte; negative: that many bytes before the end"),
         limit: int = Query(LOG_CHUNK, ge=1, le=LOG_CHUNK, description="most bytes to send"),
         follow: bool = Query(False, description="stream new output until the job ends")) -> Response:
    """Every attempt's output (the run directory's ``train.log``). Headers: ``X-Log-Start`` (first byte
    sent), ``X-Log-Next`` (the offset to ask for next), ``X-Log-Size``, ``X-Job-State``."""
    settings = settings_of(request)
    with settings.store() as store:
        job = store.get(checked_ref(ref))
    path = run_dir_of(job, settings).log_path
    size = run_file_size(path)
    start = min(offset if offset >= 0 else max(0, size + offset), size)
    headers = {"X-Log-Start": str(start), "X-Job-State": job.state, "X-Log-Size": str(size)}
    if follow:
        return StreamingResponse(_follow(settings, job.id, path, start), media_type="text/plain; charset=utf-8",
                                 headers=headers)
    data = read_bytes_from(path, start, limit)
    headers["X-Log-Next"] = str(start + len(data))
    return Response(data, media_type="text/plain; charset=utf-8", headers=headers)


async def _follow(settings: ServerSettings, job_id: int, path: Path, offset: int) -> AsyncIterator[bytes]:
    """The log from ``offset`` as it grows, until the job is final (and its last words are sent) or
    the server stops."""
    def is_final() -> bool:
        with settings.store() as store:
            return store.get(job_id).is_final

    # A stream ends after serve --max-follow seconds; the client asks again from where it stopped.
    deadline = time.monotonic() + settings.max_follow_s
    while True:
        final = await to_thread.run_sync(is_final)  # read before the log: no last words are missed
        try:
            while chunk := await to_thread.run_sync(read_bytes_from, path, offset, LOG_CHUNK):
                offset += len(chunk)
                yield chunk
        except RunFileRefused as exc:
            log.warning("log stream of job %d ended: %s", job_id, exc)
            return
        if final or settings.stopping.is_set() or time.monotonic() > deadline:
            return
        await asyncio.sleep(FOLLOW_POLL_S)


@router.get("/jobs/{ref}/artifacts/{file}", summary="A file of the job's run directory",
            responses={200: {"content": {"application/octet-stream": {}}}})
def artifact(ref: str, file: str, request: Request) -> Response:
    """One of the run directory's files, by name (model.pt, predictions.pt, embeddings.pt, summary.json,
    curves.png, config.resolved.yaml, metrics.jsonl, train.log); 404 until the run has written it."""
    check_shared_file(file)
    settings = settings_of(request)
    with settings.store() as store:
        job = store.get(checked_ref(ref))
    handle = open_run_file(run_dir_of(job, settings).path, file)
    if handle is None:
        return JSONResponse({"error": missing_file(job, file)}, 404)
    size = os.fstat(handle.fileno()).st_size
    # The file already opened (no link followed) is what is sent, up to the size it had then.
    return StreamingResponse(_pieces(handle, size), media_type=ARTIFACTS[file],
                             headers={"Content-Disposition": f'attachment; filename="{file}"'})


def _pieces(handle: BinaryIO, size: int) -> Iterator[bytes]:
    with handle:
        while size > 0 and (chunk := handle.read(min(LOG_CHUNK, size))):
            size -= len(chunk)
            yield chunk


@router.get("/openapi.json", summary="This API's OpenAPI description", include_in_schema=False)
def openapi(request: Request) -> dict:
    return request.app.openapi()
