"""The orchestrator end to end: real `largegraph` processes, a real SQLite store, real signals.

Trainers are tiny (2k nodes, a few epochs); what takes time is process start-up, so daemon tests
share what they can and poll fast (LARGEGRAPH_HEARTBEAT_S=1, --poll-interval 0.2).

No test relies on a trainer being slow enough: where a test must act on a job mid-run (kill it,
kill its daemon, cancel or drain it), it first freezes the job's processes (SIGSTOP, see
:class:`Frozen`), so the job cannot move on until the daemon has done what the test waits for.
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
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from helpers import ROOT, run_cli, sigterm_in, sigterm_pending, write_config

from largegraph.training.checkpoint import CheckpointStore
from largegraph.jobs import procs
from largegraph.jobs.store import Job, JobStore
from largegraph.jobs.workspace import Workspace
from largegraph.training.rundir import RunDir

CLI = [sys.executable, "-m", "largegraph"]
# --kill-grace bounds how long a stopping trainer may take to checkpoint and exit; no passing test
# waits it out, so it is generous: a loaded machine's slow checkpoint must not look like a hang.
FAST_SERVE = ["--poll-interval", "0.2", "--gpu-slots", "0", "--retry-backoff", "0.5", "--kill-grace", "60"]
# Small batches make an epoch long enough (~40 steps) to be interrupted between checkpoints.
SLOW_JOB = dict(sampler={"fanouts": [5, 5], "batch_size": 32, "num_workers": 0},
                train={"epochs": 8, "lr": 0.01}, checkpoint={"every_n_epochs": 1})


@pytest.fixture
def ws(tmp_path) -> Path:
    """The workspace a test's jobs run in (created by its first `submit` or `serve`)."""
    return tmp_path / "ws"


@pytest.fixture
def job_yaml(tmp_path, synth_root) -> Path:
    """A quick node classification job (2 epochs on `tiny`)."""
    return write_config(tmp_path / "job.yaml", "tiny", synth_root)


@pytest.fixture
def slow_yaml(tmp_path, synth_root) -> Path:
    """A job long enough (8 epochs of ~40 steps, a checkpoint per epoch) to be interrupted mid-run."""
    return write_config(tmp_path / "slow.yaml", "tiny", synth_root, **SLOW_JOB)


def job_env(ws: Path, **extra: str) -> dict:
    """What every job command of a test sees on top of the environment: its workspace, fast heartbeats."""
    return dict(LARGEGRAPH_WORKSPACE=str(ws), LARGEGRAPH_HEARTBEAT_S="1", **extra)


def env_for(ws: Path) -> dict:
    return dict(os.environ, PYTHONUNBUFFERED="1", **job_env(ws))


def lg(ws: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return run_cli(*args, timeout=timeout, env=job_env(ws, **env))


def lg_start(ws: Path, *args: str) -> subprocess.Popen:
    """`lg` in the background, for a command that waits on something the test must do meanwhile."""
    return subprocess.Popen([*CLI, *map(str, args)], cwd=ROOT, env=env_for(ws), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


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


def wait_for(what, timeout: float = 120, every: float = 0.1, explain=None):
    """Poll ``what()`` until it is truthy and return that; on timeout fail, saying ``explain()`` if given."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what.__doc__ or what}" + (f" ({explain()})" if explain else ""))


def metric_kinds(run_dir: str | Path) -> list[str]:
    # RunDir's reader skips a line the trainer is still writing, which a poll may well catch.
    return [record["kind"] for record in RunDir(run_dir).read_metrics()]


def epochs_done(run_dir: str | Path) -> int:
    return metric_kinds(run_dir).count("epoch")


def checkpointed_epochs(run_dir: str | Path) -> int:
    """Epochs done by the newest complete checkpoint (0 before the first). A trainer appends an
    epoch's metrics before it checkpoints the epoch, so this can lag `epochs_done` for a moment."""
    for manifest in reversed(CheckpointStore(RunDir(run_dir).checkpoints, "").manifests()):
        try:
            return json.loads(manifest.read_text())["epoch"]
        except (OSError, ValueError):
            continue  # pruned under us
    return 0


def job(ws: Path, name: str) -> Job:
    with closing(JobStore(Workspace(ws).db_path)) as store:
        return store.get(name)


def attempts(ws: Path, name: str) -> list[dict]:
    with closing(JobStore(Workspace(ws).db_path)) as store:
        return store.attempts(store.get(name).id)


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


class Frozen:
    """A running job with every process stopped (SIGSTOP): it can neither progress nor finish, so
    what the test does next provably lands mid-run, however slow or loaded the machine is."""

    def __init__(self, ws: Path, name: str):
        self.job = job(ws, name)
        assert self.job.state == "running" and self.job.pid, self.job
        pids = procs.job_processes(self.job.pid, Workspace(ws).job_mark(self.job.id))
        self._pids = {pid: procs.start_time(pid) for pid in pids}  # start times: never signal a reused pid
        self.thawed = False
        self._signal(signal.SIGSTOP)

    def _signal(self, sig: int) -> None:
        for pid, start in self._pids.items():
            if procs.is_alive(pid, start):
                procs.signal_process(pid, sig)

    def thaw(self) -> None:
        """Let the job run again (SIGCONT); a no-op once thawed or gone."""
        if not self.thawed:
            self._signal(signal.SIGCONT)
            self.thawed = True

    def thaw_once_told_to_stop(self) -> bool:
        """Thaw the job as soon as a daemon's SIGTERM waits on its leader, so that the trainer meets
        the stop request with its remaining work still ahead; returns whether it is thawed."""
        if not self.thawed and sigterm_pending(self.job.pid):
            self.thaw()
        return self.thawed

    def signals(self) -> str:
        """How the leader stands with SIGTERM, for a failure message."""
        pid = self.job.pid
        if not procs.is_alive(pid):
            return f"{self.job.name}: leader {pid} is gone"
        return (f"{self.job.name}: leader {pid} has SIGTERM pending {sigterm_pending(pid)}, "
                f"caught {sigterm_in(pid, 'SigCgt')}, ignored {sigterm_in(pid, 'SigIgn')}")


def thaw_once_told_to_stop(*jobs: Frozen) -> None:
    """Wait until every one of ``jobs`` has been asked to stop (in whatever order), thawing each as
    it is (see :meth:`Frozen.thaw_once_told_to_stop`)."""
    wait_for(lambda: all([f.thaw_once_told_to_stop() for f in jobs]),
             explain=lambda: "; ".join(f.signals() for f in jobs if not f.thawed))


@contextmanager
def frozen(ws: Path, *names: str, after_epochs: int | None = None) -> Iterator[list[Frozen]]:
    """Freeze running jobs for the block, and thaw any still frozen after it (also when it fails).

    Each must have two epochs ahead of it: it may be anywhere in the next one (past its last batch,
    say), but then a whole epoch of batches remains, and a trainer honours SIGTERM at the first batch
    boundary; a stop request therefore always finds it mid-run. With ``after_epochs``, each job is
    frozen the moment it has finished that many epochs (one may start long after another, and a
    fast job must not finish meanwhile).
    """
    jobs: list[Frozen] = []
    try:
        if after_epochs is None:
            jobs.extend(Frozen(ws, name) for name in names)
        else:
            def freeze_ready() -> bool:
                for name in names:
                    current = job(ws, name)
                    if (name not in {f.job.name for f in jobs} and current.state == "running" and current.run_dir
                            and epochs_done(current.run_dir) >= after_epochs):
                        jobs.append(Frozen(ws, name))
                return len(jobs) == len(names)

            wait_for(freeze_ready)
        for f in jobs:
            left = f.job.epochs - epochs_done(f.job.run_dir)
            assert left >= 2, f"{f.job.name} had {left} epoch(s) left when frozen; the test needs 2"
        yield jobs
    finally:
        for f in jobs:
            f.thaw()


def parent_of(pid: int) -> int | None:
    """The parent pid of a live process (None once it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


class TrainerWatch(threading.Thread):
    """Scans /proc for `largegraph train` processes and remembers the most seen at once per run dir."""

    def __init__(self, under: Path):
        super().__init__(daemon=True)
        self.under = str(under)
        self.most: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            trainers: dict[int, str] = {}
            for pid in procs.processes_with_args("train", "--run-dir"):
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
                except OSError:
                    continue
                if "--run-dir" not in argv[:-1]:
                    continue  # exited (empty cmdline) or its pid reused since the scan
                run_dir = argv[argv.index("--run-dir") + 1]
                if run_dir.startswith(self.under):  # not another test's trainer
                    trainers[pid] = run_dir
            seen: dict[str, int] = {}
            for pid, run_dir in trainers.items():
                # A trainer's own child carries its command line until it execs (libraries fork at
                # import: scipy's numpy.testing runs lscpu); it belongs to the same attempt.
                if trainers.get(parent_of(pid)) != run_dir:
                    seen[run_dir] = seen.get(run_dir, 0) + 1
            for run_dir, count in seen.items():
                self.most[run_dir] = max(self.most.get(run_dir, 0), count)

    def __enter__(self) -> "TrainerWatch":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join()


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


def test_fifty_jobs_from_ten_concurrent_processes_are_recorded_exactly_once(ws, job_yaml):
    submitters = [subprocess.Popen([sys.executable, "-c", SUBMITTER, str(p), str(job_yaml)], cwd=ROOT,
                                   env=env_for(ws), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for p in range(10)]
    for p in submitters:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        assert out.count("submitted ") == 5
    rows = sqlite3.connect(Workspace(ws).db_path).execute("SELECT id, name, state, config_path FROM jobs").fetchall()
    assert sorted(r[0] for r in rows) == list(range(1, 51))
    names = [r[1] for r in rows]
    assert len(set(names)) == 50
    assert {f"p{p}-j{k}" for p in range(10) for k in (0, 2, 4)} <= set(names)
    assert {r[2] for r in rows} == {"queued"}
    assert all(Path(r[3]).is_file() for r in rows)
    status = json.loads(lg(ws, "status", "--json").stdout)
    assert len(status) == 50 and {"id", "name", "task", "state", "attempt", "run_dir", "last_metric"} <= set(status[0])


def test_bad_config_fails_at_submit_with_the_same_message_as_train(tmp_path, ws, job_yaml):
    submitted = lg(ws, "submit", job_yaml, "model.hiden=8", "--name", "x")
    one_line_error(submitted, "model.hiden: unknown key")
    trained = lg(ws, "train", job_yaml, "model.hiden=8", "--run-dir", tmp_path / "r")
    assert submitted.stderr == trained.stderr
    one_line_error(lg(ws, "submit", tmp_path / "missing.yaml"), "does not exist")
    one_line_error(lg(ws, "submit", job_yaml, "--name", "../../etc"), "job name '../../etc' is invalid")
    one_line_error(lg(ws, "submit", job_yaml, "--name", "a;touch pwned"), "is invalid")
    assert not ws.exists()  # refused before anything was recorded


def test_status_logs_cancel_name_unknown_jobs_and_missing_stores_in_one_line(ws, job_yaml):
    one_line_error(lg(ws, "status"), "no job store in")
    assert lg(ws, "submit", job_yaml, "--name", "a", "--priority", "3").returncode == 0
    for command in (["status", "nope"], ["logs", "nope"], ["cancel", "nope"], ["logs", "99"]):
        one_line_error(lg(ws, *command), "no job")
    one_line_error(lg(ws, "submit", job_yaml, "--name", "a"), "a job named 'a' already exists")
    table = lg(ws, "status").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "TASK", "STATE", "ATTEMPT", "EPOCH/STEP", "BEST", "AGE"]
    assert table[1].split()[:5] == ["1", "a", "node", "queued", "0"]
    cancelled = lg(ws, "cancel", "a")
    assert cancelled.returncode == 0 and "cancelled a" in cancelled.stdout
    one_line_error(lg(ws, "cancel", "1"), "job a already cancelled")
    assert job(ws, "a").state == "cancelled"


def test_locked_and_corrupt_store_files_give_one_line_errors(ws, job_yaml):
    assert lg(ws, "submit", job_yaml, "--name", "a").returncode == 0
    db = Workspace(ws).db_path
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    try:
        one_line_error(lg(ws, "submit", job_yaml, LARGEGRAPH_STORE_TIMEOUT="0.5"), "is locked by another process")
        one_line_error(lg(ws, "cancel", "a", LARGEGRAPH_STORE_TIMEOUT="0.5"), "is locked by another process")
        assert "a" in lg(ws, "status", LARGEGRAPH_STORE_TIMEOUT="0.5").stdout  # readers are not blocked
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    for suffix in ("-wal", "-shm"):  # SQLite's own companions of the store file
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    db.write_bytes(b"\x00garbage, not SQLite\n" * 512)
    for command in (["status"], ["submit", job_yaml], ["cancel", "a"], ["serve", "--once"]):
        one_line_error(lg(ws, *command), "is corrupt or not a job store")


# --- the daemon -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_node_and_link_jobs_run_side_by_side_under_max_parallel_two(tmp_path, ws, synth_root, link_root):
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
def test_crashed_then_frozen_job_is_retried_and_resumes_from_its_checkpoint(ws, slow_yaml):
    assert lg(ws, "submit", slow_yaml, "--name", "social-v1", "--retries", "3").returncode == 0
    with serving(ws, "--heartbeat-timeout", "8", "--exit-when-idle"):
        run_dir = job(ws, "social-v1").run_dir
        wait_for(lambda: checkpointed_epochs(run_dir) >= 2)
        with frozen(ws, "social-v1") as (first,):
            os.kill(first.job.pid, signal.SIGKILL)  # a crash mid-training
        wait_for(lambda: job(ws, "social-v1").attempt == 2 and job(ws, "social-v1").pid)
        wait_for(lambda: epochs_done(run_dir) >= 3 and "resume" in metric_kinds(run_dir))
        with frozen(ws, "social-v1") as (second,):  # frozen: alive, but its heartbeat stops
            wait_for(lambda: job(ws, "social-v1").attempt == 3, timeout=60)
        assert not procs.is_alive(second.job.pid, second.job.pid_start)
    done = job(ws, "social-v1")
    assert (done.state, done.failures, done.exit_code, done.epoch) == ("succeeded", 2, 0, 8)
    tries = attempts(ws, "social-v1")
    assert [(a["outcome"], a["exit_code"]) for a in tries] == [("crashed", -9), ("killed", -9), ("exited", 0)]
    kinds = metric_kinds(run_dir)
    assert kinds.count("resume") == 2 and kinds[-1] == "final"
    assert [r for r in RunDir(run_dir).read_metrics()
            if r["kind"] == "resume"][0]["epoch"] >= 3  # continued after the 2 checkpointed epochs
    assert done.resumes == 2


@pytest.mark.slow
def test_daemon_sigkilled_mid_job_then_restarted_completes_every_job_once(ws, slow_yaml):
    names = ["j1", "j2", "j3"]
    for name in names:
        short = ["train.epochs=2"] if name == "j3" else []  # j3 only has to wait its turn
        assert lg(ws, "submit", slow_yaml, *short, "--name", name).returncode == 0
    with TrainerWatch(ws) as watch:
        first = serve(ws, "--max-parallel", "2")
        try:
            # Frozen, the trainers outlive their daemon mid-run, however long its successors take to
            # start: neither can finish unseen, so recovery must stop, requeue and resume both.
            with frozen(ws, *names[:2], after_epochs=1) as stopped:
                first.kill()  # SIGKILL: no chance to clean up; the trainers live on in their own sessions
                first.wait()
                running = [f.job for f in stopped]
                assert all(procs.is_alive(j.pid, j.pid_start) for j in running)
                # Two daemons come back at once: they race to recover the orphans and to claim jobs.
                with serving(ws, "--max-parallel", "1", "--exit-when-idle"), \
                        serving(ws, "--max-parallel", "1", "--exit-when-idle"):
                    # Recovery SIGTERMs each trainer, then waits for it to checkpoint and exit.
                    thaw_once_told_to_stop(*stopped)
        finally:
            first.kill()
            first.wait()
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
def test_cancel_stops_every_process_and_sigterm_drains_jobs_to_resume_later(ws, slow_yaml):
    # "doomed" runs two workers under torchrun, and torchrun starts each in a session of its own:
    # cancelling it must reach more than the launcher's process group.
    assert lg(ws, "submit", slow_yaml, "train.epochs=30", "--name", "doomed", "--nproc", "2").returncode == 0
    with serving(ws, "--max-parallel", "2", "--cpu-slots", "3", timeout=120) as daemon:
        wait_for(lambda: epochs_done(job(ws, "doomed").run_dir) >= 1)
        with frozen(ws, "doomed") as (stopped,):
            doomed = stopped.job
            mark = Workspace(ws).job_mark(doomed.id)
            assert len(procs.job_processes(doomed.pid, mark)) >= 3 > len(procs.group_members(doomed.pid))
            waiting = lg_start(ws, "cancel", "doomed", "--wait", "--timeout", "60")
            thaw_once_told_to_stop(stopped)
            out, err = waiting.communicate(timeout=120)
        assert waiting.returncode == 0 and "doomed: cancelled" in out, err
        assert not procs.job_processes(doomed.pid, mark)
        assert lg(ws, "submit", slow_yaml, "train.epochs=6", "--name", "drained").returncode == 0
        wait_for(lambda: epochs_done(job(ws, "drained").run_dir) >= 1)
        with frozen(ws, "drained") as (stopped,):
            drained = stopped.job
            daemon.send_signal(signal.SIGTERM)
            thaw_once_told_to_stop(stopped)
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
