"""A launcher's children: they die with it, are waited for with a deadline, and ports are found free."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import psutil

from largegraph.core import processes

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_child_dies_with_its_launcher_however_the_launcher_dies():
    launcher = subprocess.Popen([sys.executable, "-c",
                                 "import sys, time\n"
                                 "from largegraph.core.processes import spawn\n"
                                 f"print(spawn({SLEEPER!r}, new_session=True).pid, flush=True)\n"
                                 "time.sleep(60)\n"], stdout=subprocess.PIPE, text=True)
    child = int(launcher.stdout.readline())
    assert psutil.pid_exists(child)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    deadline = time.monotonic() + 30
    while _alive(child):
        assert time.monotonic() < deadline, "the child outlived its launcher"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_waiting_has_a_deadline_and_what_is_left_is_killed():
    procs = [processes.spawn(SLEEPER), processes.spawn([sys.executable, "-c", "pass"])]
    assert not processes.wait_ended(procs, 0.3)
    assert processes.kill_and_reap(procs) == []
    assert procs[0].returncode == -signal.SIGKILL and procs[1].returncode == 0
    assert processes.wait_ended(procs, 0)


def test_a_listening_port_is_seen_and_a_free_one_is_not():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert processes.listening(server.getsockname()[1])
    first = processes.free_ports(3)
    assert not any(processes.listening(first + k) for k in range(3))


def test_a_child_gets_this_environment_plus_its_own():
    os.environ["LARGEGRAPH_TEST_INHERITED"] = "1"
    try:
        proc = processes.spawn([sys.executable, "-c", "import os; raise SystemExit(int(os.environ['A']) + "
                                "int(os.environ['LARGEGRAPH_TEST_INHERITED']))"], {"A": "4"})
        assert proc.wait(timeout=60) == 5
    finally:
        del os.environ["LARGEGRAPH_TEST_INHERITED"]
