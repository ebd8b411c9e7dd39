"""A workspace: one directory holding the job store, each job's frozen config and its run directory.

Layout::

    jobs.db (+ -wal, -shm)     the SQLite job store
    jobs/<id>/config.yaml      the resolved config as submitted (later edits to the user's file don't count)
    runs/<name>-<id>/          the job's run directory: train.log, metrics.jsonl, heartbeat, checkpoints/
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from largegraph.errors import JobError

WORKSPACE_ENV = "LARGEGRAPH_WORKSPACE"
DEFAULT_WORKSPACE = "lg-workspace"
# Names end up in paths and in argument lists; a strict alphabet rules out traversal and quoting games.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_job_name(name: str) -> str:
    """Return ``name`` if it is a valid job name, else raise ``JobError`` saying what is allowed."""
    if not NAME_PATTERN.match(name):
        raise JobError(f"job name {name!r} is invalid: use 1-64 letters, digits, '_', '.' or '-', "
                       "starting with a letter or digit")
    if name.isdigit():
        raise JobError(f"job name {name!r} is invalid: all-digit names would be mistaken for job ids")
    return name


class Workspace:
    """Paths of one workspace directory."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root or os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE).expanduser().absolute()

    @property
    def db_path(self) -> Path:
        return self.root / "jobs.db"

    def job_config(self, job_id: int) -> Path:
        return self.root / "jobs" / str(job_id) / "config.yaml"

    def run_dir(self, name: str, job_id: int) -> Path:
        return self.root / "runs" / f"{name}-{job_id}"

    def job_mark(self, job_id: int) -> str:
        """The value every process of this job carries in its environment (see ``procs.MARK_ENV``)."""
        return f"{self.root}#{job_id}"

    def create(self) -> None:
        """Create the workspace directories (idempotent)."""
        try:
            (self.root / "jobs").mkdir(parents=True, exist_ok=True)
            (self.root / "runs").mkdir(exist_ok=True)
        except OSError as exc:
            raise JobError(f"cannot create workspace {self.root}: {exc.strerror}") from None

    def require(self) -> None:
        """Raise ``JobError`` unless this workspace already holds a job store."""
        if not self.db_path.exists():
            raise JobError(f"no job store in {self.root}: submit a job first, or pass --workspace "
                           f"(or set {WORKSPACE_ENV}) to the workspace the daemon uses")
