"""LocalExecutor on real processes: start, poll, stop, and a kill that reaches a whole process tree."""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from largegraph.jobs import procs
from largegraph.jobs.executor import Attempt, LocalExecutor
from largegraph.jobs.schema import Job
from largegraph.jobs.workspace import Workspace


def make_job(ws: Workspace, job_id: int = 1, **fields) -> Job:
    values = dict(id=job_id, name=f"job{job_id}", task="node", config="", config_path="",
                  run_dir=str(ws.root / "runs" / f"job{job_id}"), epochs=None, state="running", priority=0,
                  max_retries=0, attempt=1, failures=0, nproc=1, device="cpu", max_restarts=None,
                  submitted_at=0.0, not_before=0.0, started_at=None, finished_at=None, daemon_id=None, pid=None,
                  pid_start=None, heartbeat_at=None, cancel_requested=0, exit_code=None, last_error=None,
                  epoch=None, step=None, metric=None, last_metric=None, best_metric=None, resumes=0)
    values.update(fields)
    return Job(**values)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def wait_exit(executor: LocalExecutor, attempt: Attempt, timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    while (code := executor.poll(attempt)) is None:
        assert time.monotonic() < deadline, "the attempt did not exit"
        time.sleep(0.05)
    return code


def wait_for(path: Path, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} was not written"
        time.sleep(0.05)
    return path.read_text()


def test_start_appends_output_and_poll_returns_the_exit_code(ws: Workspace, tmp_path: Path):
    executor = LocalExecutor(ws, kill_grace=5.0)
    log = tmp_path / "train.log"
    log.write_text("header\n")
    code = "import os, sys; print(os.environ['LARGEGRAPH_JOB_MARK'], os.getcwd()); sys.exit(3)"
    attempt = executor.spawn(make_job(ws, 7), python(code), {"PATH": "/usr/bin:/bin"}, log, tmp_path)
    assert attempt.job_id == 7 and attempt.id > 0 and attempt.since is not None
    assert wait_exit(executor, attempt) == 3
    assert log.read_text() == f"header\n{ws.job_mark(7)} {tmp_path}\n"
    executor.release(attempt)


def test_terminate_sends_sigterm_to_the_leader(ws: Workspace, tmp_path: Path):
    executor = LocalExecutor(ws, kill_grace=5.0)
    ready = tmp_path / "ready"
    code = f"import pathlib, time; pathlib.Path({str(ready)!r}).write_text('up'); time.sleep(120)"
    attempt = executor.spawn(make_job(ws), python(code), {}, tmp_path / "log", tmp_path)
    wait_for(ready)
    assert executor.poll(attempt) is None
    executor.terminate(attempt)
    assert wait_exit(executor, attempt) == -signal.SIGTERM


def test_kill_reaches_the_process_group_and_marked_processes(ws: Workspace, tmp_path: Path):
    """A child in the leader's group and a grandchild in a session of its own (as torchrun starts
    workers) both die with the attempt."""
    executor = LocalExecutor(ws, kill_grace=5.0)
    pids = tmp_path / "pids"
    code = (f"import os, pathlib, subprocess, sys, time\n"
            f"sleep = [sys.executable, '-c', 'import time; time.sleep(120)']\n"
            f"a = subprocess.Popen(sleep)\n"
            f"b = subprocess.Popen(sleep, start_new_session=True)\n"
            f"pathlib.Path({str(pids)!r}).write_text(f'{{a.pid}} {{b.pid}}')\n"
            f"time.sleep(120)\n")
    job = make_job(ws)
    attempt = executor.spawn(job, python(code), {}, tmp_path / "log", tmp_path)
    children = [int(p) for p in wait_for(pids).split()]
    assert len(procs.job_processes(attempt.id, ws.job_mark(job.id))) == 3
    assert len(procs.group_members(attempt.id)) == 2  # the grandchild left the group
    executor.kill(attempt)
    assert wait_exit(executor, attempt) == -signal.SIGKILL
    assert procs.wait_gone(lambda: [p for p in children if procs.is_alive(p)], 30.0)


def test_stop_orphan_and_clear_strays_leave_nothing_of_the_job(ws: Workspace, tmp_path: Path):
    """Another executor (a dead daemon's) started the attempt; this one finds it by the store's record."""
    first = LocalExecutor(ws, kill_grace=0.5)
    ready = tmp_path / "ready"
    # Ignores SIGTERM, as a frozen trainer would: the grace period must end in SIGKILL.
    code = (f"import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"pathlib.Path({str(ready)!r}).write_text('up'); time.sleep(120)")
    job = make_job(ws)
    attempt = first.spawn(job, python(code), {}, tmp_path / "log", tmp_path)
    wait_for(ready)
    LocalExecutor(ws, kill_grace=0.5).stop_orphan(make_job(ws, pid=attempt.id, pid_start=attempt.since))
    assert wait_exit(first, attempt) == -signal.SIGKILL
    assert not procs.job_processes(attempt.id, ws.job_mark(job.id))

    ready.unlink()
    stray = first.spawn(job, python(code), {}, tmp_path / "log", tmp_path)
    wait_for(ready)
    LocalExecutor(ws, kill_grace=0.5).clear_strays(job)  # the store lost its pid: found by its mark
    assert wait_exit(first, stray) == -signal.SIGKILL
