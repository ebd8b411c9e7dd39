"""A workspace: one directory holding the job store, each job's frozen config and its run directory.

Layout::

    jobs.db (+ -wal, -shm)     the SQLite job store
    jobs/<id>/config.yaml      the resolved config as submitted (later edits to the user's file don't count)
    runs/<name>-<id>/          the job's run directory (its files: see largegraph.training.rundir)

:class:`Workspace` is the only code that spells these names; what lies inside a run directory is
:class:`largegraph.training.rundir.RunDir`'s to name.
"""
from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from largegraph.core.errors import JobError
from largegraph.core.fsutil import atomic_write_text
from largegraph.jobs.store import JobStore

WORKSPACE_ENV = "LARGEGRAPH_WORKSPACE"
DEFAULT_WORKSPACE = "lg-workspace"
# Names end up in paths and in argument lists; a strict alphabet rules out traversal and quoting games.
# Always used whole (``fullmatch``): ``$`` with ``match`` would let a final newline through.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def is_valid_name(name: object) -> bool:
    """Whether ``name`` is a whole name in the safe alphabet (jobs, tokens, references alike)."""
    return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None


def check_name(name: str, what: str = "job name") -> str:
    """Return ``name`` if it is a valid name, else raise ``JobError`` saying what is allowed; the one
    check for every name that ends up in a path, a log line or a terminal."""
    if not is_valid_name(name):
        raise JobError(f"{what} {name!r} is invalid: use 1-64 letters, digits, '_', '.' or '-', "
                       "starting with a letter or digit")
    return name


def check_job_name(name: str) -> str:
    """Return ``name`` if it is a valid job name, else raise ``JobError`` saying what is allowed."""
    check_name(name)
    if name.isdigit():
        raise JobError(f"job name {name!r} is invalid: all-digit names would be mistaken for job ids")
    return name


def write_job_config(path: str | Path, text: str) -> None:
    """Write a job's frozen config at ``path`` (a :meth:`Workspace.job_config`), creating its folder.

    Atomic and fsynced: a daemon that starts the job, or one that comes back after a crash, reads
    the whole config or none of it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


class Workspace:
    """Paths of one workspace directory."""

    DB = "jobs.db"
    JOBS = "jobs"
    RUNS = "runs"
    JOB_CONFIG = "config.yaml"

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root or os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE).expanduser().absolute()

    @property
    def db_path(self) -> Path:
        return self.root / self.DB

    @property
    def jobs_dir(self) -> Path:
        return self.root / self.JOBS

    @property
    def runs_dir(self) -> Path:
        return self.root / self.RUNS

    def job_config(self, job_id: int) -> Path:
        return self.jobs_dir / str(job_id) / self.JOB_CONFIG

    def run_dir(self, name: str, job_id: int) -> Path:
        return self.runs_dir / f"{name}-{job_id}"

    def staging_path(self) -> Path:
        """Where ``submit`` writes a config before the job has an id (hidden, and unique per call: the
        HTTP server queues jobs from many threads of one process)."""
        return self.jobs_dir / f".submit-{os.getpid()}-{uuid.uuid4().hex[:12]}.yaml"

    def job_mark(self, job_id: int) -> str:
        """The value every process of this job carries in its environment (see ``procs.MARK_ENV``)."""
        return f"{self.root}#{job_id}"

    def create(self) -> None:
        """Create the workspace directories (idempotent). A new workspace is the owner's alone (0700):
        it holds the job store with token digests, every config and every log."""
        try:
            if not self.root.exists():
                self.root.parent.mkdir(parents=True, exist_ok=True)
                self.root.mkdir(mode=0o700, exist_ok=True)
            self.jobs_dir.mkdir(mode=0o700, exist_ok=True)
            self.runs_dir.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise JobError(f"cannot create workspace {self.root}: {exc.strerror}") from None

    def require(self) -> None:
        """Raise ``JobError`` unless this workspace already holds a job store."""
        if not self.db_path.exists():
            raise JobError(f"no job store in {self.root}: submit a job first, or pass --workspace "
                           f"(or set {WORKSPACE_ENV}) to the workspace the daemon uses")


def open_store(workspace: Workspace, create: bool = False) -> JobStore:
    """The workspace's job store; with ``create``, make the workspace first if it is new, else
    ``JobError`` unless it already holds a store."""
    if create:
        workspace.create()
    else:
        workspace.require()
    store = JobStore(workspace.db_path)
    if create:
        private_files(workspace.db_path)
    return store


def private_files(db_path: Path) -> None:
    """Make the store's files readable by their owner only, whatever the umask made them."""
    for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        try:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
        except OSError:
            pass  # not there (yet), or not ours: the 0700 directory still keeps others out
