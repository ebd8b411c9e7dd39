"""Queueing a validated job: the one path by which a config becomes a job, for ``submit`` on this
machine and for ``POST /v1/jobs`` of ``serve --http`` alike."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from largegraph.core.errors import ConfigError, JobError
from largegraph.jobs.store import Job, JobStore
from largegraph.jobs.workspace import Workspace, check_job_name, write_job_config

if TYPE_CHECKING:  # the config schema (pydantic) is imported only by the code that needs it
    from largegraph.config import JobConfig


@dataclass
class SubmitOptions:
    """How a job is queued, besides its config (``largegraph submit --help``)."""

    name: str | None = None
    priority: int = 0
    retries: int = 2
    nproc: int = 1
    device: str = "cpu"
    max_restarts: int | None = None
    nodes: int = 1                  # the rest is for a cluster scheduler (`serve --executor slurm`)
    partition: str | None = None
    time_limit: str | None = None

    def __post_init__(self) -> None:
        if self.name is not None:
            check_job_name(self.name)
        if self.nodes < 1:
            raise JobError(f"--nodes must be at least 1, got {self.nodes}")
        if self.partition is not None and not PARTITION.fullmatch(self.partition):
            raise JobError(f"--partition {self.partition!r} is invalid: a Slurm partition name "
                           "(letters, digits, '_', '.', '-'; several separated by commas)")
        if self.time_limit is not None and not TIME_LIMIT.fullmatch(self.time_limit):
            raise JobError(f"--time-limit {self.time_limit!r} is invalid: use Slurm's notation, e.g. 90 (minutes), "
                           "1:30:00, or 2-12:00:00 (days-hours:minutes:seconds)")


# Partition names and time limits go to sbatch as arguments (never through a shell); the patterns
# only keep a typo from waiting in the queue until a daemon tries to start the job.
PARTITION = re.compile(r"[A-Za-z0-9_.-]{1,64}(,[A-Za-z0-9_.-]{1,64}){0,15}")
TIME_LIMIT = re.compile(r"\d{1,7}|\d{1,7}:\d{1,2}(:\d{1,2})?|\d{1,4}-\d{1,2}(:\d{1,2}(:\d{1,2})?)?")


def pin_data_root(cfg: "JobConfig") -> Path:
    """Make ``data.root`` absolute and return it: the daemon trains from the workspace, not from
    where the job was submitted."""
    root = Path(cfg.data.root).expanduser().absolute()
    cfg.data.root = str(root)
    dc = cfg.distributed  # distdgl's partitions and machine list are read from where the daemon runs too
    if dc.part_config:
        dc.part_config = str(Path(dc.part_config).expanduser().absolute())
    if dc.ip_config:
        dc.ip_config = str(Path(dc.ip_config).expanduser().absolute())
    return root


INT64 = (-(1 << 63), (1 << 63) - 1)  # what SQLite (and every consumer in C) can hold


def check_integers(values: object, where: str = "") -> None:
    """``ConfigError`` for any integer in the (dumped) config outside 64 bits: the store and the
    trainer's libraries cannot hold it. Walks with its own stack, so no depth is too deep."""
    stack = [(where, values)]
    while stack:
        key, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{key}.{k}" if key else str(k), v) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{key}[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
            raise ConfigError(f"{key}={value} is out of range: integers must fit in 64 bits")


def queue_job(ws: Workspace, store: JobStore, cfg: "JobConfig", options: SubmitOptions,
              submitted_by: str | None = None, max_queued: int | None = None) -> Job:
    """Freeze ``cfg`` (validated by the caller) in the workspace and record it as a queued job;
    ``submitted_by`` (a token's name) may have at most ``max_queued`` jobs waiting.

    Raises:
        JobError: the name is taken, the quota is reached, the workspace cannot take the config, or
            the store refused.
    """
    check_integers(cfg.model_dump())
    if options.partition is not None:
        from largegraph.jobs.slurm import check_partition

        check_partition(options.partition)  # a partition Slurm does not know fails now, not in the queue
    pin_data_root(cfg)
    text = resolved_config(cfg, ws)
    job = store.submit(
        name=options.name, default_base=cfg.name, task=cfg.task, config=text,
        epochs=cfg.train.epochs, priority=options.priority, max_retries=options.retries, nproc=options.nproc,
        device=options.device, max_restarts=options.max_restarts,
        paths=lambda name, job_id: (ws.job_config(job_id), ws.run_dir(name, job_id)),
        submitted_by=submitted_by, max_queued=max_queued, nodes=options.nodes, partition=options.partition,
        time_limit=options.time_limit)
    try:
        write_job_config(job.config_path, text)
    except OSError as exc:
        # The store holds the config too, and a daemon writes the file again before it starts the job.
        raise JobError(f"job {job.name} (id {job.id}) is queued, but its config could not be written to "
                       f"{job.config_path}: {exc.strerror}") from None
    return job


def resolved_config(cfg: "JobConfig", ws: Workspace) -> str:
    """The config as the daemon will hand it to `train`, in the words of ``dump_config`` (the one
    writer of resolved configs). Written into the workspace first: a workspace that cannot take the
    file refuses the job before the store records it."""
    from largegraph.config import dump_config

    staged = ws.staging_path()
    try:
        dump_config(cfg, staged)
        return staged.read_text()
    except OSError as exc:
        raise JobError(f"cannot write to workspace {ws.root}: {exc.strerror}") from None
    finally:
        staged.unlink(missing_ok=True)
