"""``train --nproc``'s launcher: the environment its workers get, and the verdict on their failures."""
from __future__ import annotations

import signal

import pytest

from largegraph.launcher import Failure, _restartable, report, root_cause, worker_env


def test_workers_get_torchruns_environment():
    env = worker_env(1, 2, 29600, restart=1, max_restarts=3, run_id="abc")
    assert (env["RANK"], env["LOCAL_RANK"], env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"]) == ("1", "1", "2", "2")
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("127.0.0.1", "29600")
    assert (env["TORCHELASTIC_RESTART_COUNT"], env["TORCHELASTIC_MAX_RESTARTS"], env["TORCHELASTIC_RUN_ID"]) == \
        ("1", "3", "abc")


def test_a_killed_worker_is_the_root_cause_and_the_job_fails_in_one_line(capsys):
    failures = {0: Failure(100, 1, 5.0), 1: Failure(101, -signal.SIGKILL, 6.0)}
    assert root_cause(failures) == (1, failures[1])
    assert _restartable(failures)
    assert report(failures, 2) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("largegraph: error: worker rank 1 (pid 101) ended (killed by SIGKILL)")
    assert "after 2 restart(s)" in line


@pytest.mark.parametrize("codes, exit_code", [({2}, 2), ({143, -signal.SIGTERM}, 143)])
def test_refused_input_or_a_stop_is_not_restarted_and_says_nothing_more(codes, exit_code, capsys):
    failures = {rank: Failure(100 + rank, code, float(rank)) for rank, code in enumerate(codes)}
    assert not _restartable(failures)
    assert report(failures, 1) == exit_code
    assert capsys.readouterr().err == ""
