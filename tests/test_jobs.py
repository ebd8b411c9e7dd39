"""The orchestrator end to end: real `largegraph` processes, a real SQLite store, real signals.

Trainers are tiny (2k nodes, a few epochs); what takes time is process start-up, so daemon tests
share what they can and poll fast (LARGEGRAPH_HEARTBEAT_S=1, --poll-interval 0.2).
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from conftest import ROOT, write_config
from largegraph.data.synthetic import SynthLinkParams, write_synthetic_link_dataset
from largegraph.jobs import procs
from largegraph.jobs.store import JobStore
from largegraph.jobs.workspace import Workspace

CLI = [sys.executable, "-m", "largegraph"]
FAST_SERVE = ["--poll-interval", "0.2", "--gpu-slots", "0", "--retry-backoff", "0.5", "--kill-grace", "20"]
# Small batches make an epoch long enough (~40 steps) to be interrupted between checkpoints.
SLOW_JOB = dict(sampler={"fanouts": [5, 5], "batch_size": 32, "num_workers": 0},
                train={"epochs": 8, "lr": 0.01}, checkpoint={"every_n_epochs": 1})


def env_for(ws: Path, **extra: str) -> dict:
    return dict(os.environ, PYTHONUNBUFFERED="1", LARGEGRAPH_WORKSPACE=str(ws), LARGEGRAPH_HEARTBEAT_S="1", **extra)


def lg(ws: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], cwd=ROOT, env=env_for(ws, **env), capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess, needle: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("largegraph: error: ") and needle in result.stderr, result.stderr


def serve(ws: Path, *args: str) -> subprocess.Popen:
    """Start `largegraph serve` in the background; its output goes to a file `finish` prints."""
    log_path = ws.parent / f"serve-{time.monotonic_ns()}.log"
    with open(log_path, "w") as log:
        daemon = subprocess.Popen([*CLI, "serve", *FAST_SERVE, *args], cwd=ROOT, env=env_for(ws), stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    daemon.log_path = log_path
    return daemon


def wait_for(what, timeout: float = 120, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what.__doc__ or what}")


def epochs_done(run_dir: str | Path) -> int:
    path = Path(run_dir) / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return sum(1 for line in lines if '"kind": "epoch"' in line)


def job(ws: Path, name: str):
    store = JobStore(ws / "jobs.db")
    try:
        return store.get(name)
    finally:
        store.close()


def attempts(ws: Path, name: str) -> list[dict]:
    store = JobStore(ws / "jobs.db")
    try:
        return store.attempts(store.get(name).id)
    finally:
        store.close()


def finish(daemon: subprocess.Popen, timeout: float = 240) -> None:
    """Wait for a daemon to exit by itself, with code 0."""
    try:
        assert daemon.wait(timeout=timeout) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        print(daemon.log_path.read_text())


@contextmanager
def serving(ws: Path, *args: str, timeout: float = 240) -> Iterator[subprocess.Popen]:
    """A background daemon for the block; it must exit cleanly after it, and is killed if the block fails."""
    daemon = serve(ws, *args)
    try:
        yield daemon
    except BaseException:
        daemon.kill()
        daemon.wait()
        print(daemon.log_path.read_text())
        raise
    finish(daemon, timeout)


def metric_kinds(run_dir: str) -> list[str]:
    return [json.loads(line)["kind"] for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


class TrainerWatch(threading.Thread):
    """Scans /proc for `largegraph train` processes and remembers the most seen at once per run dir."""

    def __init__(self, under: Path):
        super().__init__(daemon=True)
        self.under = str(under)
        self.most: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            seen: dict[str, int] = {}
            for pid in procs.processes_with_args("train", "--run-dir"):
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
                except OSError:
                    continue
                if "--run-dir" not in argv[:-1]:
                    continue  # exited (empty cmdline) or its pid reused since the scan
                run_dir = argv[argv.index("--run-dir") + 1]
                if not run_dir.startswith(self.under):
                    continue  # another test's trainer
                seen[run_dir] = seen.get(run_dir, 0) + 1
            for run_dir, count in seen.items():
                self.most[run_dir] = max(self.most.get(run_dir, 0), count)

    def __enter__(self) -> "TrainerWatch":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join()


@pytest.fixture(scope="module")
def link_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("jobs-links")
    params = SynthLinkParams(num_nodes=1500, avg_degree=8, num_communities=12, feat_dim=8, seed=4)
    write_synthetic_link_dataset(root, "links", params, split_style="edge")
    return root


# --- submit, status, cancel: no daemon needed ----------------------------------------------------------
SUBMITTER = """
import sys
from largegraph.cli import main
proc, config = sys.argv[1], sys.argv[2]
for k in range(5):
    name = ["--name", f"p{proc}-j{k}"] if k % 2 == 0 else []
    if main(["submit", config, "train.epochs=1", *name]) != 0:
        sys.exit(1)
"""


def test_fifty_jobs_from_ten_concurrent_processes_are_recorded_exactly_once(tmp_path, synth_root):
    ws = tmp_path / "ws"
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root)
    submitters = [subprocess.Popen([sys.executable, "-c", SUBMITTER, str(p), str(cfg)], cwd=ROOT, env=env_for(ws),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in range(10)]
    for p in submitters:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        assert out.count("submitted ") == 5
    rows = sqlite3.connect(ws / "jobs.db").execute("SELECT id, name, state, config_path FROM jobs").fetchall()
    assert sorted(r[0] for r in rows) == list(range(1, 51))
    names = [r[1] for r in rows]
    assert len(set(names)) == 50
    assert {f"p{p}-j{k}" for p in range(10) for k in (0, 2, 4)} <= set(names)
    assert {r[2] for r in rows} == {"queued"}
    assert all(Path(r[3]).is_file() for r in rows)
    status = json.loads(lg(ws, "status", "--json").stdout)
    assert len(status) == 50 and {"id", "name", "task", "state", "attempt", "run_dir", "last_metric"} <= set(status[0])


def test_bad_config_fails_at_submit_with_the_same_message_as_train(tmp_path, synth_root):
    ws = tmp_path / "ws"
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root)
    submitted = lg(ws, "submit", cfg, "model.hiden=8", "--name", "x")
    one_line_error(submitted, "model.hiden: unknown key")
    trained = lg(ws, "train", cfg, "model.hiden=8", "--run-dir", tmp_path / "r")
    assert submitted.stderr == trained.stderr
    one_line_error(lg(ws, "submit", tmp_path / "missing.yaml"), "does not exist")
    one_line_error(lg(ws, "submit", cfg, "--name", "../../etc"), "job name '../../etc' is invalid")
    one_line_error(lg(ws, "submit", cfg, "--name", "a;touch pwned"), "is invalid")
    assert not ws.exists()  # refused before anything was recorded


def test_status_logs_cancel_name_unknown_jobs_and_missing_stores_in_one_line(tmp_path, synth_root):
    ws = tmp_path / "ws"
    one_line_error(lg(ws, "status"), "no job store in")
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root)
    assert lg(ws, "submit", cfg, "--name", "a", "--priority", "3").returncode == 0
    for command in (["status", "nope"], ["logs", "nope"], ["cancel", "nope"], ["logs", "99"]):
        one_line_error(lg(ws, *command), "no job")
    one_line_error(lg(ws, "submit", cfg, "--name", "a"), "a job named 'a' already exists")
    table = lg(ws, "status").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "TASK", "STATE", "ATTEMPT", "EPOCH/STEP", "BEST", "AGE"]
    assert table[1].split()[:5] == ["1", "a", "node", "queued", "0"]
    cancelled = lg(ws, "cancel", "a")
    assert cancelled.returncode == 0 and "cancelled a" in cancelled.stdout
    one_line_error(lg(ws, "cancel", "1"), "job a already cancelled")
    assert job(ws, "a").state == "cancelled"


def test_locked_and_corrupt_store_files_give_one_line_errors(tmp_path, synth_root):
    ws = tmp_path / "ws"
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root)
    assert lg(ws, "submit", cfg, "--name", "a").returncode == 0
    holder = sqlite3.connect(ws / "jobs.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    try:
        one_line_error(lg(ws, "submit", cfg, LARGEGRAPH_STORE_TIMEOUT="0.5"), "is locked by another process")
        one_line_error(lg(ws, "cancel", "a", LARGEGRAPH_STORE_TIMEOUT="0.5"), "is locked by another process")
        assert "a" in lg(ws, "status", LARGEGRAPH_STORE_TIMEOUT="0.5").stdout  # readers are not blocked
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    for name in ("jobs.db-wal", "jobs.db-shm"):
        (ws / name).unlink(missing_ok=True)
    (ws / "jobs.db").write_bytes(b"\x00garbage, not SQLite\n" * 512)
    for command in (["status"], ["submit", cfg], ["cancel", "a"], ["serve", "--once"]):
        one_line_error(lg(ws, *command), "is corrupt or not a job store")


# --- the daemon -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_node_and_link_jobs_run_side_by_side_under_max_parallel_two(tmp_path, synth_root, link_root):
    ws = tmp_path / "ws"
    node = write_config(tmp_path / "node.yaml", "tiny", synth_root, train={"epochs": 3},
                        checkpoint={"every_n_epochs": 1}, sampler={"num_workers": 0})
    link = write_config(tmp_path / "link.yaml", "links", link_root, task="link_prediction",
                        train={"epochs": 3}, sampler={"fanouts": [5, 5], "batch_size": 512, "num_workers": 0})
    for name, cfg in (("node-a", node), ("link-b", link), ("node-c", node)):
        assert lg(ws, "submit", cfg, "--name", name).returncode == 0
    finish(serve(ws, "--max-parallel", "2", "--exit-when-idle"))
    spans = {}
    for name in ("node-a", "link-b", "node-c"):
        j = job(ws, name)
        assert (j.state, j.attempt, j.exit_code, j.epoch) == ("succeeded", 1, 0, 3), j
        (a,) = attempts(ws, name)
        spans[name] = (a["started_at"], a["ended_at"])
    assert job(ws, "node-a").metric == "acc" and job(ws, "link-b").metric.startswith("hits@")
    # node-a and link-b ran at the same time; node-c waited for a free slot.
    assert spans["link-b"][0] < spans["node-a"][1] and spans["node-a"][0] < spans["link-b"][1]
    assert spans["node-c"][0] >= min(spans["node-a"][1], spans["link-b"][1])
    records = {r["name"]: r for r in json.loads(lg(ws, "status", "--json").stdout)}
    assert records["link-b"]["task"] == "link_prediction" and records["link-b"]["last_metric"] is not None
    log = lg(ws, "logs", "link-b")
    assert "attempt 1" in log.stdout and "run_dir=" in log.stdout


@pytest.mark.slow
def test_crashed_then_frozen_job_is_retried_and_resumes_from_its_checkpoint(tmp_path, synth_root):
    ws = tmp_path / "ws"
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root, **SLOW_JOB)
    assert lg(ws, "submit", cfg, "--name", "social-v1", "--retries", "3").returncode == 0
    with serving(ws, "--heartbeat-timeout", "8", "--exit-when-idle"):
        run_dir = job(ws, "social-v1").run_dir
        wait_for(lambda: epochs_done(run_dir) >= 2)
        first = job(ws, "social-v1").pid
        os.kill(first, signal.SIGKILL)  # a crash mid-training
        wait_for(lambda: job(ws, "social-v1").attempt == 2 and job(ws, "social-v1").pid)
        second = job(ws, "social-v1")
        wait_for(lambda: epochs_done(run_dir) >= 3 and "resume" in metric_kinds(run_dir))
        os.kill(second.pid, signal.SIGSTOP)  # frozen: alive, but its heartbeat stops
        wait_for(lambda: job(ws, "social-v1").attempt == 3, timeout=60)
        assert not procs.is_alive(second.pid, second.pid_start)
    done = job(ws, "social-v1")
    assert (done.state, done.failures, done.exit_code, done.epoch) == ("succeeded", 2, 0, 8)
    tries = attempts(ws, "social-v1")
    assert [(a["outcome"], a["exit_code"]) for a in tries] == [("crashed", -9), ("killed", -9), ("exited", 0)]
    kinds = metric_kinds(run_dir)
    assert kinds.count("resume") == 2 and kinds[-1] == "final"
    assert [r for r in map(json.loads, (Path(run_dir) / "metrics.jsonl").read_text().splitlines())
            if r["kind"] == "resume"][0]["epoch"] >= 3  # continued after the 2 checkpointed epochs
    assert done.resumes == 2


@pytest.mark.slow
def test_daemon_sigkilled_mid_job_then_restarted_completes_every_job_once(tmp_path, synth_root):
    ws = tmp_path / "ws"
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root, **SLOW_JOB)
    names = ["j1", "j2", "j3"]
    for name in names:
        short = ["train.epochs=2"] if name == "j3" else []  # j3 only has to wait its turn
        assert lg(ws, "submit", cfg, *short, "--name", name).returncode == 0
    with TrainerWatch(ws) as watch:
        first = serve(ws, "--max-parallel", "2")
        try:
            wait_for(lambda: all(epochs_done(job(ws, n).run_dir) >= 1 for n in names[:2]))
            running = [job(ws, n) for n in names[:2]]
        finally:
            first.kill()  # SIGKILL: no chance to clean up; the trainers live on in their own sessions
            first.wait()
        assert all(procs.is_alive(j.pid, j.pid_start) for j in running)
        # Two daemons come back at once: they race to recover the orphans and to claim jobs.
        again = [serve(ws, "--max-parallel", "1", "--exit-when-idle") for _ in range(2)]
        for daemon in again:
            finish(daemon)
    for j in running:
        assert not procs.is_alive(j.pid, j.pid_start)
        tries = attempts(ws, j.name)
        assert tries[0]["outcome"] == "orphaned" and tries[-1]["outcome"] == "exited"
        assert "resume" in metric_kinds(j.run_dir)
    for name in names:
        assert job(ws, name).state == "succeeded"
        assert metric_kinds(job(ws, name).run_dir).count("final") == 1
        spans = [(a["started_at"], a["ended_at"]) for a in attempts(ws, name)]
        assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))  # one attempt at a time
    assert watch.most and max(watch.most.values()) == 1, watch.most


@pytest.mark.slow
def test_cancel_stops_every_process_and_sigterm_drains_jobs_to_resume_later(tmp_path, synth_root):
    ws = tmp_path / "ws"
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root, **SLOW_JOB)
    # "doomed" runs two workers under torchrun, and torchrun starts each in a session of its own:
    # cancelling it must reach more than the launcher's process group.
    assert lg(ws, "submit", cfg, "train.epochs=30", "--name", "doomed", "--nproc", "2").returncode == 0
    with serving(ws, "--max-parallel", "2", "--cpu-slots", "3", timeout=60) as daemon:
        doomed = wait_for(lambda: epochs_done(job(ws, "doomed").run_dir) >= 1 and job(ws, "doomed"))
        mark = Workspace(ws).job_mark(doomed.id)
        assert len(procs.job_processes(doomed.pid, mark)) >= 3 > len(procs.group_members(doomed.pid))
        cancel = lg(ws, "cancel", "doomed", "--wait", "--timeout", "60")
        assert cancel.returncode == 0 and "doomed: cancelled" in cancel.stdout, cancel.stderr
        assert not procs.job_processes(doomed.pid, mark)
        # Told to stop after its first epoch: five more (~190 steps) to go, the checkpoint comes sooner.
        assert lg(ws, "submit", cfg, "train.epochs=6", "--name", "drained").returncode == 0
        drained = wait_for(lambda: epochs_done(job(ws, "drained").run_dir) >= 1 and job(ws, "drained"))
        daemon.send_signal(signal.SIGTERM)
    assert not procs.is_alive(drained.pid, drained.pid_start)
    after = job(ws, "drained")
    assert (after.state, after.failures, after.exit_code) == ("queued", 0, 143)
    assert attempts(ws, "drained")[0]["outcome"] == "drained"
    with serving(ws, "--once"):  # claims what is queued now, waits for it, exits
        follow = lg(ws, "logs", "drained", "--follow", timeout=120)  # ends when the job does
    assert follow.returncode == 0 and follow.stdout.count("=== largegraph serve") == 2
    assert "resumed from checkpoint" in follow.stdout and "run_dir=" in follow.stdout
    assert job(ws, "drained").state == "succeeded" and "resume" in metric_kinds(drained.run_dir)
    assert job(ws, "doomed").state == "cancelled"
