"""The job service on Slurm: `largegraph serve --executor slurm` against a real private cluster
(tests/slurm_cluster.py), each attempt an sbatch of the project's launch/slurm/train.sbatch.

The service's own helpers (test_job_service, httpserver) are reused as they are: the fixture puts
the cluster's SLURM_CONF into the environment they pass on. Where a test must act on a job mid-run
(preempt it, kill it, kill its daemon), it first freezes the trainer (SIGSTOP), so the job cannot
finish before the test has done what it waits for, however loaded the machine is.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psutil
import pytest
from helpers import sigterm_pending, write_config
from httpserver import Server, create_token, submit_body
from test_job_service import job_yaml, slow_yaml, ws  # noqa: F401  (fixtures shared with the local service's tests)
from test_job_service import (attempts, checkpointed_epochs, epochs_done, finish, job, lg, metric_kinds,
                              one_line_error, serve, serving, wait_for)

from largegraph.jobs import procs

pytestmark = pytest.mark.slow
SLURM = ("--executor", "slurm")
# An epoch of the slow job takes a fraction of a second: jobs acted on mid-run get enough of them that
# the freeze (see frozen_trainers) always finds two still ahead.
LONG = ("train.epochs=20",)


@pytest.fixture
def cluster(slurm_cluster, monkeypatch):
    """The session's cluster, reachable by every command the test starts (SLURM_CONF)."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    return slurm_cluster


def queued_in_slurm(cluster) -> list[int]:
    """Ids of every job Slurm still lists as pending or running."""
    return [int(i) for i in cluster.run("squeue", "-h", "-o", "%i").stdout.split()]


def trainers(run_dir: str) -> list[int]:
    """The run's Python processes (torchrun's launcher and its worker), not srun, which carries the
    same arguments but must keep talking to Slurm."""
    found = []
    for pid in procs.processes_with_args("--run-dir", run_dir):
        try:
            if psutil.Process(pid).name().startswith("python"):
                found.append(pid)
        except psutil.Error:
            continue  # gone meanwhile
    return found


@contextmanager
def frozen_trainers(ws: Path, *names: str) -> Iterator[list[int]]:
    """Stop (SIGSTOP) each job's training processes as soon as it has checkpointed an epoch (one job
    may start well after another, and a fast one must not finish meanwhile); continue them all after
    the block (also when it fails). Yields the stopped pids."""
    stopped: dict[int, int | None] = {}
    ready: set[str] = set()

    def freeze_ready() -> bool:
        for name in set(names) - ready:
            run_dir = job(ws, name).run_dir
            pids = trainers(run_dir) if checkpointed_epochs(run_dir) >= 1 else []
            for pid in pids:
                stopped[pid] = procs.start_time(pid)
                procs.signal_process(pid, signal.SIGSTOP)
            if pids:
                ready.add(name)
        return len(ready) == len(names)

    try:
        wait_for(freeze_ready, timeout=240)
        for name in names:
            current = job(ws, name)
            assert current.epochs - epochs_done(current.run_dir) >= 2, f"{name} was frozen too late"
        yield list(stopped)
    finally:
        for pid, start in stopped.items():
            if procs.is_alive(pid, start):
                procs.signal_process(pid, signal.SIGCONT)


def succeeded_once(ws: Path, name: str, resumed: bool) -> None:
    """The job succeeded in one store attempt (a Slurm requeue is not another), every epoch of its
    config trained once counting from the last resume, one final record."""
    done = job(ws, name)
    assert (done.state, done.exit_code, done.failures, done.epoch) == ("succeeded", 0, 0, done.epochs), done
    assert [(a["outcome"], a["exit_code"]) for a in attempts(ws, name)] == [("exited", 0)]
    kinds = metric_kinds(done.run_dir)
    assert kinds.count("final") == 1 and ("resume" in kinds) == resumed, kinds


def test_node_and_link_jobs_run_through_slurm_and_the_api_refuses_sbatch_flags(cluster, tmp_path, ws, synth_root,
                                                                               link_root):
    node = write_config(tmp_path / "node.yaml", "tiny", synth_root, sampler={"num_workers": 0})
    link = write_config(tmp_path / "link.yaml", "links", link_root, task="link_prediction",
                        sampler={"fanouts": [5, 5], "batch_size": 512, "num_workers": 0})
    token = create_token(ws, "alice")
    with Server(ws, *SLURM, "--max-parallel", "2", "--data-root", str(synth_root)) as server:
        body = submit_body(node, name="node-a")
        flagged = server.request("POST", "/v1/jobs", token, body | {"sbatch_flags": ["--exclusive"]})
        assert flagged.status in (400, 422) and "sbatch_flags" in flagged.json()["error"], flagged.body
        assert "\n" not in flagged.json()["error"]
        assert server.request("POST", "/v1/jobs", token, body).status == 201
        assert lg(ws, "submit", link, "--name", "link-b", "--partition", "main").returncode == 0
        follow = lg(ws, "logs", "link-b", "--follow", timeout=300)  # ends when the job does
        wait_for(lambda: job(ws, "node-a").is_final, timeout=300)
    assert follow.returncode == 0 and "=== largegraph serve: link-b" in follow.stdout and "run_dir=" in follow.stdout
    for name, metric in (("node-a", "acc"), ("link-b", "hits@")):
        succeeded_once(ws, name, resumed=False)
        done = job(ws, name)
        assert done.metric.startswith(metric)
        slurm_job = cluster.job(attempts(ws, name)[0]["pid"])  # the attempt's id is the Slurm job's
        assert slurm_job["JobState"] == "COMPLETED" and slurm_job["JobName"].startswith(f"largegraph-{done.id}-")
        assert slurm_job["StdOut"] == str(Path(done.run_dir) / "train.log")
    assert "Slurm job" in server.output()


def test_a_preempted_job_is_requeued_by_slurm_and_succeeds_once_in_one_run_directory(cluster, ws, slow_yaml):
    assert lg(ws, "submit", slow_yaml, *LONG, "--name", "low", "--partition", "low").returncode == 0
    with serving(ws, *SLURM, "--exit-when-idle", timeout=300) as daemon:
        slurm_id = wait_for(lambda: job(ws, "low").pid)
        with frozen_trainers(ws, "low") as stopped:
            # A job in the higher-tier partition needs the whole node: Slurm preempts ours (SIGTERM, GraceTime).
            urgent = cluster.sbatch("--partition=high", "--exclusive", "--output=/dev/null", "--wrap", "sleep 1")
            wait_for(lambda: any(sigterm_pending(p) for p in stopped) or cluster.job_state(slurm_id) != "RUNNING",
                     timeout=120)
        cluster.wait_state(urgent, "COMPLETED", timeout=240)
    succeeded_once(ws, "low", resumed=True)
    assert int(cluster.job(slurm_id)["Restarts"]) >= 1 and attempts(ws, "low")[0]["pid"] == slurm_id
    assert [p.name for p in (ws / "runs").iterdir()] == [Path(job(ws, "low").run_dir).name]
    assert f"Slurm requeued job {slurm_id}" in daemon.log_path.read_text()


def test_daemon_sigkilled_while_two_slurm_jobs_run_is_adopted_and_each_trains_once(cluster, ws, slow_yaml):
    for name in ("a", "b"):
        assert lg(ws, "submit", slow_yaml, *LONG, "--name", name).returncode == 0
    first = serve(ws, *SLURM, "--max-parallel", "2")
    second = None
    try:
        with frozen_trainers(ws, "a", "b"):
            ids = {name: job(ws, name).pid for name in ("a", "b")}
            first.kill()  # SIGKILL: Slurm keeps the jobs; the store still says the dead daemon runs them
            first.wait()
            second = serve(ws, *SLURM, "--max-parallel", "1", "--exit-when-idle")
            wait_for(lambda: all(f"adopted Slurm job {i}" in second.log_path.read_text() for i in ids.values()))
            assert sorted(queued_in_slurm(cluster)) == sorted(ids.values())  # no second copy
        finish(second, timeout=300)
    finally:
        for daemon in (first, second):
            if daemon is not None and daemon.poll() is None:
                daemon.kill()
                daemon.wait()
    for name, slurm_id in ids.items():
        succeeded_once(ws, name, resumed=False)  # never restarted: the same training, watched by another daemon
        assert metric_kinds(job(ws, name).run_dir).count("epoch") == job(ws, name).epochs
        assert attempts(ws, name)[0]["pid"] == slurm_id
    assert "started: Slurm job" not in second.log_path.read_text()


def test_a_crash_is_retried_and_cancel_reaches_slurm(cluster, ws, slow_yaml):
    assert lg(ws, "submit", slow_yaml, *LONG, "--name", "crashy", "--retries", "1", "--max-restarts", "0").returncode == 0
    assert lg(ws, "submit", slow_yaml, "train.epochs=200", "--name", "doomed", "--priority", "-1").returncode == 0
    with serving(ws, *SLURM, "--max-parallel", "2", "--exit-when-idle", timeout=300):
        with frozen_trainers(ws, "crashy") as stopped:
            for pid in stopped:
                procs.signal_process(pid, signal.SIGKILL)  # a crash mid-training
        wait_for(lambda: job(ws, "crashy").attempt == 2, timeout=120)
        doomed = wait_for(lambda: job(ws, "doomed").pid)
        wait_for(lambda: epochs_done(job(ws, "doomed").run_dir) >= 1, timeout=240)
        cancelled = lg(ws, "cancel", "doomed", "--wait", "--timeout", "120", timeout=180)
        assert cancelled.returncode == 0 and "doomed: cancelled" in cancelled.stdout, cancelled.stderr
        assert doomed not in queued_in_slurm(cluster)
        assert cluster.job_state(doomed) == "CANCELLED"
    crashy = job(ws, "crashy")
    assert (crashy.state, crashy.failures, crashy.attempt) == ("succeeded", 1, 2)
    tries = attempts(ws, "crashy")
    assert [a["outcome"] for a in tries] == ["crashed", "exited"] and tries[0]["pid"] != tries[1]["pid"]
    assert "resume" in metric_kinds(crashy.run_dir) and metric_kinds(crashy.run_dir).count("final") == 1
    assert job(ws, "doomed").state == "cancelled"


def test_slurm_mistakes_are_one_line_at_start_or_at_submit(cluster, ws, job_yaml, monkeypatch):
    one_line_error(lg(ws, "serve", *SLURM, "--sbatch-flag=--bogus", "--once"), "unrecognized option '--bogus'")
    one_line_error(lg(ws, "serve", *SLURM, "--sbatch-flag=--partition=nope", "--once"),
                   "invalid partition specified: nope")
    one_line_error(lg(ws, "serve", "--sbatch-flag=--exclusive", "--once"), "only used with --executor slurm")
    one_line_error(lg(ws, "submit", job_yaml, "--partition", "nope"), "Partition nope not found")
    one_line_error(lg(ws, "submit", job_yaml, "--time-limit", "soon"), "--time-limit 'soon' is invalid")
    # A job Slurm cannot place fails at its start with sbatch's reason, in one line.
    assert lg(ws, "submit", job_yaml, "--name", "huge", "--nodes", "5").returncode == 0
    finish(serve(ws, *SLURM, "--once"))
    huge = job(ws, "huge")
    assert huge.state == "failed" and huge.last_error.startswith("cannot start: ") and "\n" not in huge.last_error
    monkeypatch.setenv("SLURM_CONF", str(ws.parent / "no-such-slurm.conf"))
    one_line_error(lg(ws, "serve", *SLURM, "--once"), "Slurm is not reachable")
