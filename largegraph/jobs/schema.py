"""The job store's schema: its tables and their ordered migrations, the states a job moves through,
the row types read from it and the store's named errors.

Kept apart from :class:`largegraph.jobs.store.JobStore` (the reads and writes) so that what a job
*is* can be read, and imported, without the SQL that moves it.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from typing import Optional

from largegraph.core.errors import JobError

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = ("succeeded", "failed", "cancelled")

# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
MIGRATIONS: list[tuple[str, ...]] = [
    (  # v1
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            task TEXT NOT NULL,
            config TEXT NOT NULL,
            config_path TEXT NOT NULL DEFAULT '',
            run_dir TEXT NOT NULL DEFAULT '',
            epochs INTEGER,
            state TEXT NOT NULL DEFAULT 'queued'
                CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
            priority INTEGER NOT NULL DEFAULT 0,
            max_retries INTEGER NOT NULL DEFAULT 0,
            attempt INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0,
            nproc INTEGER NOT NULL DEFAULT 1,
            device TEXT NOT NULL DEFAULT 'cpu',
            max_restarts INTEGER,
            submitted_at REAL NOT NULL,
            not_before REAL NOT NULL DEFAULT 0,
            started_at REAL,
            finished_at REAL,
            daemon_id TEXT,
            pid INTEGER,
            pid_start INTEGER,
            heartbeat_at REAL,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            exit_code INTEGER,
            last_error TEXT,
            epoch INTEGER,
            step INTEGER,
            metric TEXT,
            last_metric REAL,
            best_metric REAL,
            resumes INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX jobs_by_state ON jobs (state, priority DESC, id)",
        """CREATE TABLE daemons (
            id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, pid_start INTEGER,
            started_at REAL NOT NULL, heartbeat_at REAL NOT NULL, stopped_at REAL
        )""",
        """CREATE TABLE attempts (
            job_id INTEGER NOT NULL REFERENCES jobs (id), attempt INTEGER NOT NULL, daemon_id TEXT,
            pid INTEGER, started_at REAL NOT NULL, ended_at REAL, exit_code INTEGER, outcome TEXT,
            PRIMARY KEY (job_id, attempt)
        )""",
    ),
    (  # v2: API tokens of `largegraph serve --http`, stored as digests only
        """CREATE TABLE tokens (
            id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, digest TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL, revoked_at REAL, last_used_at REAL
        )""",
        # A name may be reused once its token is revoked, never held by two live tokens.
        "CREATE UNIQUE INDEX tokens_live_name ON tokens (name) WHERE revoked_at IS NULL",
    ),
    (  # v3: which token queued a job over HTTP (None: `submit` on the server's host), for its quota
        "ALTER TABLE jobs ADD COLUMN submitted_by TEXT",
    ),
    (  # v4: what a job asks of a cluster scheduler (`submit --nodes/--partition/--time-limit`)
        "ALTER TABLE jobs ADD COLUMN nodes INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE jobs ADD COLUMN partition TEXT",
        "ALTER TABLE jobs ADD COLUMN time_limit TEXT",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)


class StoreBusy(JobError):
    """The store stayed locked by another process for longer than the busy timeout."""


class NoSuchJob(JobError):
    """No job has the given name or id."""


class JobConflict(JobError):
    """The request contradicts the job's state: its name is taken, or it already ended."""


class QueueFull(JobError):
    """The token that asks already has as many jobs waiting as the server allows."""


@dataclass
class Job:
    """One row of the ``jobs`` table."""

    id: int
    name: str
    task: str
    config: str
    config_path: str
    run_dir: str
    epochs: Optional[int]
    state: str
    priority: int
    max_retries: int
    attempt: int
    failures: int
    nproc: int
    device: str
    max_restarts: Optional[int]
    submitted_at: float
    not_before: float
    started_at: Optional[float]
    finished_at: Optional[float]
    daemon_id: Optional[str]
    pid: Optional[int]
    pid_start: Optional[int]
    heartbeat_at: Optional[float]
    cancel_requested: int
    exit_code: Optional[int]
    last_error: Optional[str]
    epoch: Optional[int]
    step: Optional[int]
    metric: Optional[str]
    last_metric: Optional[float]
    best_metric: Optional[float]
    resumes: int
    submitted_by: Optional[str] = None
    nodes: int = 1                      # machines the job spans (a scheduler's allocation; nproc per node)
    partition: Optional[str] = None     # the scheduler's partition, None for its default
    time_limit: Optional[str] = None    # the scheduler's time limit per attempt, in Slurm's notation

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Job":
        names = {f.name for f in fields(cls)}
        return cls(**{k: row[k] for k in row.keys() if k in names})

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def slots_kind(self) -> str:
        """Which slot pool the job draws from: ``gpu`` for CUDA jobs, else ``cpu``."""
        return "gpu" if self.device.startswith("cuda") else "cpu"


@dataclass
class Daemon:
    """One row of the ``daemons`` table: a ``largegraph serve`` process, alive or not."""

    id: str
    host: str
    pid: int
    pid_start: Optional[int]
    started_at: float
    heartbeat_at: float
    stopped_at: Optional[float]


@dataclass
class Outcome:
    """How an attempt ended, as the daemon records it."""

    state: str                      # queued (to be retried/resumed) or a final state
    outcome: str                    # short word kept in the attempts table: exited, killed, orphaned, drained...
    exit_code: Optional[int] = None
    last_error: Optional[str] = None
    failure: bool = False           # counts against the job's retry limit
    not_before: float = 0.0         # earliest time a requeued job may start again
