"""One distdgl job at a time per machine: DGL names its shared memory per tensor, not per job.

A graph server puts its partition's features in shared memory named after the feature alone
(``/dev/shm/node~_N~feat-kvdata-`` for every graph) and opens it without checking it is new, so a
second job's servers on the same machine overwrite the first job's features under its running
trainers: the first job goes on training on the wrong data, with no error. Two jobs are safe only
on machines (or containers) with separate ``/dev/shm``; the lock lives there, so its scope is
exactly the memory DGL shares.

The launcher of a ``distributed.local`` job takes the lock before any server starts and waits for
a job that holds it; on an ip_config's machines, each machine's first graph server takes it and
refuses to start while another job holds it. The kernel drops the lock when its holder dies, so a
killed job never leaves the machine locked.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout

from largegraph.core.errors import EXIT_CRASHED, LargeGraphError

DIR_ENV = "LARGEGRAPH_DISTDGL_LOCK_DIR"  # where the lock lives (tests); /dev/shm by default
NAME = "largegraph-distdgl.lock"
_held: list["HostLock"] = []  # a graph server's lock, open until the process exits


class MachineBusy(LargeGraphError):
    """Another distdgl job holds this machine's shared memory. Exit code 1: retrying later can work."""

    exit_code = EXIT_CRASHED


def lock_path() -> Path:
    """The lock file, beside the shared memory DGL uses (the temp dir where there is no /dev/shm)."""
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV]) / NAME
    shm = Path("/dev/shm")
    return (shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())) / NAME


class HostLock:
    """The machine's distdgl lock, held from :meth:`try_take` until :meth:`release` or process exit."""

    def __init__(self, who: dict[str, str]):
        self.path = lock_path()
        self.who = who  # what a job waiting for this one is told: pid, run dir
        # flock underneath: the kernel drops it when the holder dies, however it dies. Any user's
        # job may take it (mode), and the file stays on release (removing it would race a taker).
        self._lock = FileLock(self.path, mode=0o666, timeout=0, on_acquired=self._write_holder)

    def _write_holder(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), **self.who}).encode(), 0)

    def try_take(self) -> bool:
        """Take the lock if it is free; True when this process holds it."""
        if self._lock.is_locked:
            return True
        try:
            self._lock.acquire()
        except Timeout:
            return False
        return True

    def holder(self) -> str:
        """Who holds the lock, in words (what its holder wrote), for a waiting or refused job."""
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        if not info:
            return "another distdgl job"
        run = f", run dir {info['run_dir']}" if info.get("run_dir") else ""
        return f"distdgl job pid {info.get('pid', '?')}{run}"

    def release(self) -> None:
        """Let the next job on this machine start."""
        if self._lock.is_locked:
            self._lock.release()


def busy_message(lock: HostLock, machine: str) -> str:
    """One line: which job holds ``machine`` and what to do."""
    return (f"{machine} already runs {lock.holder()}: DGL's graph servers name shared memory per machine, so "
            f"a second job there would overwrite its features; run one distdgl job per machine (or container) "
            f"at a time ({lock.path})")


def hold_for_server(machine: str, run_dir: str) -> None:
    """Take the machine's lock for this graph server's life, or refuse in one line (:class:`MachineBusy`)."""
    lock = HostLock({"run_dir": run_dir})
    if not lock.try_take():
        raise MachineBusy(f"distdgl: {busy_message(lock, machine)}")
    _held.append(lock)

