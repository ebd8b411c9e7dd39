"""The distdgl watcher's verdict: which member's failure is reported when several ended at once."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from largegraph.backends.distdgl.launcher import SERVER, TRAINER, Machine, Member, first_failure

HERE = Machine(0, "127.0.0.1", 30050)


def ended(role: str, index: int, code: int) -> Member:
    """A member whose real process has already ended with ``code`` (negative: killed by that signal)."""
    if code < 0:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        proc.send_signal(-code)
    else:
        proc = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
    proc.wait(timeout=60)
    return Member(role, index, HERE, proc)


def running(role: str, index: int) -> Member:
    return Member(role, index, HERE, subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))


@pytest.fixture
def members():
    made: list[Member] = []
    yield made
    for m in made:
        if m.proc.poll() is None:
            m.proc.kill()
            m.proc.wait()


def test_a_killed_trainer_is_the_cause_even_when_its_peer_failed_first_in_order(members):
    members += [ended(TRAINER, 0, 1), ended(TRAINER, 1, -signal.SIGKILL), ended(SERVER, 0, 0)]
    assert first_failure(members[:2], members[2:]) is members[1]


def test_a_killed_server_is_the_cause_of_its_trainers_failing(members):
    members += [ended(TRAINER, 0, 1), ended(TRAINER, 1, 1), ended(SERVER, 0, -signal.SIGKILL), running(SERVER, 1)]
    assert first_failure(members[:2], members[2:]) is members[2]


def test_without_a_signal_the_first_failed_trainer_is_reported(members):
    members += [running(TRAINER, 0), ended(TRAINER, 1, 2), ended(SERVER, 0, 1)]
    assert first_failure(members[:2], members[2:]) is members[1]


def test_nothing_failed_while_servers_leave_cleanly_and_trainers_stop_or_finish(members):
    members += [ended(TRAINER, 0, 0), ended(TRAINER, 1, 143), ended(SERVER, 0, 0), running(SERVER, 1)]
    assert first_failure(members[:2], members[2:]) is None
