"""Process liveness and signals for jobs: a leader process, its process group, and every process
that inherited the job's mark (POSIX; the complete picture needs Linux's /proc).

A pid alone does not identify a process for long: after it exits the kernel may hand the number to
an unrelated process. Where ``/proc`` exists a process is identified by its pid *and* its start
time, so a daemon that comes back after a crash never mistakes a stranger for its old job. Zombies
(exited, not yet reaped: common for orphans under a container's init) count as dead.

A job's processes are not all in its process group: torchrun starts every worker in a session of
its own, and a worker whose launcher died is reparented away from the job's tree. What they all
keep is their environment, so the daemon marks each job's environment (``MARK_ENV``) and finds the
job's processes by that mark.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Callable, Iterator

PROC = Path("/proc")
MARK_ENV = "LARGEGRAPH_JOB_MARK"


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time in clock ticks) from /proc, or None where unavailable."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; the fields after it do not.
    rest = text[text.rindex(")") + 2:].split()
    return rest[0], int(rest[2]), int(rest[19])


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), or None if unknown."""
    st = _stat(pid)
    return st[2] if st else None


def is_alive(pid: int | None, start: int | None = None) -> bool:
    """Whether ``pid`` is a running (non-zombie) process, and the same one that had start time ``start``."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    st = _stat(pid)
    if st is None:
        return True
    state, _, started = st
    return state not in ("Z", "X") and (start is None or started == start)


def _pids() -> Iterator[int]:
    """Every process id in /proc (none where there is no /proc)."""
    if not PROC.is_dir():
        return
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid`` (Linux; elsewhere the leader if alive)."""
    if not PROC.is_dir():
        return [pgid] if is_alive(pgid) else []
    members = []
    for pid in _pids():
        st = _stat(pid)
        if st and st[1] == pgid and st[0] not in ("Z", "X"):
            members.append(pid)
    return members


def signal_process(pid: int, sig: int) -> bool:
    """Send ``sig`` to ``pid``; False if it no longer exists (or is not ours to signal)."""
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to every process of the group; False if the group no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _matching(name: str, wanted: Callable[[list[bytes]], bool]) -> list[int]:
    """Live processes whose ``/proc/<pid>/<name>`` (a NUL-separated list: environ, cmdline) satisfies
    ``wanted``. The caller is left out: whoever looks for a job's processes must not signal itself."""
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            fields = (PROC / str(pid) / name).read_bytes().split(b"\0")
        except OSError:
            continue  # gone, or another user's
        if wanted(fields) and is_alive(pid):
            found.append(pid)
    return found


def marked(mark: str) -> list[int]:
    """Live processes whose environment carries ``MARK_ENV=mark`` (Linux; elsewhere none)."""
    entry = f"{MARK_ENV}={mark}".encode()
    return _matching("environ", lambda environ: entry in environ)


def processes_with_args(*args: str) -> list[int]:
    """Pids whose command line contains every one of ``args`` as whole arguments (Linux only).

    Used to find a job's trainer when the store lost its pid (a daemon killed between starting the
    process and recording it).
    """
    wanted = [a.encode() for a in args]
    return _matching("cmdline", lambda argv: all(a in argv for a in wanted))


def job_processes(leader: int | None, mark: str) -> list[int]:
    """Every live process of a job: its leader's process group and all processes bearing its mark."""
    members = set(group_members(leader)) if leader else set()
    return sorted(members | set(marked(mark)))


def kill_job(leader: int | None, mark: str) -> None:
    """SIGKILL every process of the job (its group, torchrun workers in their own sessions, their children)."""
    if leader:
        signal_group(leader, signal.SIGKILL)
    for pid in marked(mark):
        signal_process(pid, signal.SIGKILL)


def stop_job(leader: int | None, leader_start: int | None, mark: str, grace_s: float) -> None:
    """SIGTERM the job's leader (the trainer checkpoints; torchrun forwards it to its workers), wait
    up to ``grace_s`` for all of the job's processes to end, then SIGKILL whatever is left.

    Only the leader gets SIGTERM: a data-loading worker that received it too would die under the
    trainer, turning a clean checkpoint-and-stop into a crash.
    """
    if leader and is_alive(leader, leader_start):
        signal_process(leader, signal.SIGTERM)
    if wait_gone(lambda: job_processes(leader, mark), grace_s):
        return
    kill_job(leader, mark)
    wait_gone(lambda: job_processes(leader, mark), 30.0)


def wait_gone(members: Callable[[], list[int]], timeout_s: float) -> bool:
    """Poll ``members()`` until it is empty; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while members():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True
