"""The processes a launcher starts (torch-free: a launcher holds no torch beside its workers).

A launcher's children die with it (``PR_SET_PDEATHSIG``), so a launcher killed outright leaves no
orphans that go on training; it waits for them with a deadline and ends the rest with SIGKILL.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Iterable

import psutil

from largegraph.core.errors import ConfigError

POLL_S = 0.2


def die_with_parent() -> None:
    """Runs in a child between fork and exec: SIGKILL it when its parent dies, however it dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def spawn(argv: list[str], env: dict[str, str] | None = None, new_session: bool = False) -> subprocess.Popen:
    """Start ``argv`` with this environment plus ``env``, as a child that dies with this process.

    Args:
        new_session: its own session (as torchrun starts workers): a signal to the launcher's
            process group (Ctrl-C, a scheduler) reaches the launcher alone, which decides what the
            workers get.
    """
    return subprocess.Popen(argv, env={**os.environ, **(env or {})}, preexec_fn=die_with_parent,
                            start_new_session=new_session)


def wait_ended(procs: Iterable[subprocess.Popen], timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for every process to end; False if some still run."""
    procs = list(procs)
    deadline = time.monotonic() + timeout_s
    while any(p.poll() is None for p in procs):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True


def kill_and_reap(procs: Iterable[subprocess.Popen], timeout_s: float = 30) -> list[subprocess.Popen]:
    """SIGKILL every process still running and wait for each; returns those that did not exit."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    stuck = []
    for proc in procs:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stuck.append(proc)
    return stuck


def free_ports(count: int, host: str = "127.0.0.1") -> int:
    """The first of ``count`` consecutive ports free on this machine right now."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((host, 0))
            first = probe.getsockname()[1]
        if first + count >= 65000:
            continue
        if all(_port_free(host, first + k) for k in range(count)):
            return first
    raise ConfigError(f"found no {count} consecutive free ports on {host}")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def listening(port: int) -> bool:
    """Whether some process on this machine listens on TCP ``port``."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in connections)


def exit_now(code: int) -> None:
    """End this process: flush output and leave without running native destructors.

    Native teardown at interpreter exit (DGL/libxsmm and torch thread pools, gloo's process group)
    once aborted or deadlocked finished runs; everything a run writes is closed and fsynced before.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
