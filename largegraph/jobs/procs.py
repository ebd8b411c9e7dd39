"""Process liveness and signals for jobs: a leader process, its process group, and every process
that inherited the job's mark (POSIX; read through psutil).

A pid alone does not identify a process for long: after it exits the kernel may hand the number to
an unrelated process. A process is identified by its pid *and* its start time, so a daemon that
comes back after a crash never mistakes a stranger for its old job. Zombies (exited, not yet
reaped: common for orphans under a container's init) count as dead.

A job's processes are not all in its process group: torchrun starts every worker in a session of
its own, and a worker whose launcher died is reparented away from the job's tree. What they all
keep is their environment, so the daemon marks each job's environment (``MARK_ENV``) and finds the
job's processes by that mark.
"""
from __future__ import annotations

import os
import signal
import time
from typing import Callable, Iterator

import psutil

MARK_ENV = "LARGEGRAPH_JOB_MARK"
_GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if unknown.

    Ticks since boot, as the store has always kept them (an integer column): unlike psutil's
    ``create_time()`` (boot time plus ticks, in wall-clock seconds), it does not move when the
    system clock is set, so two processes reading it at different times agree.
    """
    try:
        since_boot = psutil.Process(pid).create_time() - psutil.boot_time()
    except (psutil.Error, OSError):
        return None
    return round(since_boot * _TICKS)


def is_alive(pid: int | None, start: int | None = None) -> bool:
    """Whether ``pid`` is a running (non-zombie) process, and the same one that had start time ``start``."""
    if not pid or pid <= 0:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() in _GONE:
            return False
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return start is None  # exists, owned by someone else: its start time cannot be told
    return start is None or start_time(pid) == start


def _others(attrs: list[str]) -> Iterator[psutil.Process]:
    """Every process but the caller (whoever looks for a job's processes must not signal itself),
    with ``attrs`` read into ``.info`` (None where not ours to read)."""
    me = os.getpid()
    for process in psutil.process_iter(attrs, ad_value=None):
        if process.pid != me:
            yield process


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    members = []
    for process in psutil.process_iter(["status"], ad_value=None):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] not in _GONE:
                members.append(process.pid)
        except OSError:
            continue  # gone meanwhile
    return members


def signal_process(pid: int, sig: int) -> bool:
    """Send ``sig`` to ``pid``; False if it no longer exists (or is not ours to signal)."""
    return _signal(os.kill, pid, sig)


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to every process of the group; False if the group no longer exists."""
    return _signal(os.killpg, pgid, sig)


def _signal(send: Callable[[int, int], None], target: int, sig: int) -> bool:
    try:
        send(target, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def marked(mark: str) -> list[int]:
    """Live processes whose environment carries ``MARK_ENV=mark``."""
    return [p.pid for p in _others(["environ"])
            if (p.info["environ"] or {}).get(MARK_ENV) == mark and is_alive(p.pid)]


def processes_with_args(*args: str) -> list[int]:
    """Pids whose command line contains every one of ``args`` as whole arguments.

    Used to find a job's trainer when the store lost its pid (a daemon killed between starting the
    process and recording it).
    """
    return [p.pid for p in _others(["cmdline"])
            if all(a in (p.info["cmdline"] or []) for a in args) and is_alive(p.pid)]


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
