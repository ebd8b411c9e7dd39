"""One distdgl job per machine: the lock beside DGL's shared memory, between real processes."""
from __future__ import annotations

import signal
from pathlib import Path

import pytest
from helpers import hold_machine

from largegraph.backends.distdgl.hostlock import DIR_ENV, HostLock, MachineBusy, hold_for_server
from largegraph.backends.distdgl.launcher import LOCK_ENV, Layout, Machine, server_env
from largegraph.core.errors import EXIT_CRASHED


@pytest.fixture
def lock_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    return tmp_path


@pytest.fixture
def holder(lock_dir):
    """Another process holding the machine for run dir /runs/first."""
    proc = hold_machine(lock_dir, "/runs/first")
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_job_cannot_take_the_machine_until_the_holder_dies(holder):
    lock = HostLock({"run_dir": "/runs/second"})
    assert not lock.try_take()
    assert lock.holder() == f"distdgl job pid {holder.pid}, run dir /runs/first"
    holder.send_signal(signal.SIGKILL)  # no clean-up runs: the kernel drops the lock
    holder.wait()
    assert lock.try_take()
    assert "/runs/second" in lock.holder()
    lock.release()
    again = HostLock({})
    assert again.try_take()
    again.release()


def test_a_graph_server_on_a_busy_machine_refuses_in_one_line(holder):
    with pytest.raises(MachineBusy) as refused:
        hold_for_server("machine 10.0.0.2", "/runs/second")
    message = str(refused.value)
    assert "\n" not in message and refused.value.exit_code == EXIT_CRASHED  # retrying later can work
    assert message.startswith(f"distdgl: machine 10.0.0.2 already runs distdgl job pid {holder.pid}, "
                              f"run dir /runs/first")
    assert "one distdgl job per machine" in message


def test_only_the_first_server_of_each_listed_machine_takes_its_machine(tmp_path):
    machines = [Machine(0, "10.0.0.1", 30050), Machine(1, "10.0.0.2", 30050)]
    listed = Layout(machines, 2, 1, "ip.txt", "p.json", 30052, local=False)
    takers = [sid for sid in range(4) if LOCK_ENV in server_env(listed, sid, tmp_path)]
    assert takers == [0, 2] and server_env(listed, 2, tmp_path)[LOCK_ENV] == str(tmp_path)
    # a local job's launcher holds the machine for all its servers
    here = Layout(machines[:1], 2, 2, "ip.txt", "p.json", 30052, local=True)
    assert not any(LOCK_ENV in server_env(here, sid, tmp_path) for sid in range(2))
