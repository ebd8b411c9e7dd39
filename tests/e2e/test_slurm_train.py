"""launch/slurm/train.sbatch, unmodified, on a real one-node Slurm cluster (tests/slurm_cluster.py).

Each job is submitted with the documented command (`sbatch [flags] launch/slurm/train.sbatch CONFIG
...`) from the test's directory, so its output file and default run directory land there. An
interrupted job must end requeued, resumed from the checkpoint its trainers wrote AT the signal, and
complete the same 4 epochs.

Every signal must land mid-run whatever the machine's speed: once the first epoch's checkpoint exists,
the test stops the trainer (SIGSTOP, as a busy node would leave it mid-epoch) and then acts. Slurm
sends SIGCONT with every SIGTERM it sends (requeue, preemption, scancel), so the trainer goes on at
once and checkpoints at its next batch; the script's own time-limit signal (scancel --signal=TERM)
does not, so that test continues the trainer itself once the script reported the signal.
"""
from __future__ import annotations

import json
import math
import os
import re
import signal
import sys
from pathlib import Path

import pytest
from helpers import ROOT, run_cli, wait_for, write_config

from slurm_cluster import free_port

pytestmark = pytest.mark.slow

SBATCH = ROOT / "launch" / "slurm" / "train.sbatch"
EPOCHS = 4
JOB = dict(sampler={"fanouts": [5, 5], "batch_size": 50}, train={"epochs": EPOCHS},
           checkpoint={"every_n_steps": 10_000, "keep_last": 5})
STOPPED = re.compile(r"stopped on SIGTERM after writing checkpoint (step-\d+)")
RESUMED = re.compile(r"resumed from checkpoint (step-\d+)")


@pytest.fixture
def job_env() -> dict:
    """The submitting shell's environment: the project's Python first on PATH, this checkout's code,
    and a rendezvous port of its own (other clusters' jobs may run on this machine at the same time)."""
    return {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
            "RDZV_PORT": str(free_port())}


@pytest.fixture
def config(tmp_path, synth_root) -> Path:
    return write_config(tmp_path / "job.yaml", "tiny", synth_root, **JOB)


def submit(cluster, cwd: Path, env: dict, config: Path, *flags: str, args: tuple[str, ...] = ()) -> int:
    return cluster.sbatch(*flags, str(SBATCH), str(config), *args, cwd=cwd, env=env)


def run_dir_of(cluster, cwd: Path, job: int) -> Path:
    return cwd / "runs" / f"job-{cluster.cluster_name}-{job}"


def output_of(cwd: Path, job: int) -> str:
    return (cwd / f"largegraph-{job}.out").read_text()


def freeze_after_first_epoch(cluster, job: int, run_dir: Path) -> int:
    """Wait until the first epoch's checkpoint is on disk, then SIGSTOP the trainer (rank 0: its peers
    then wait for it) mid-run; return its pid."""
    def done() -> bool:
        if any((run_dir / "checkpoints").glob("step-*.json")):
            return True
        assert cluster.job_state(job) in {"PENDING", "RUNNING", "CONFIGURING"}, cluster.job(job)
        return False
    wait_for(done, 180, f"job {job}'s first checkpoint")
    pid = json.loads((run_dir / "heartbeat").read_text())["pid"]
    os.kill(pid, signal.SIGSTOP)
    return pid


def epoch_records(run_dir: Path) -> list[int]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines if json.loads(line).get("kind") == "epoch"]


def assert_resumed_at_signal(cluster, cwd: Path, job: int, restarts: int = 1) -> str:
    """The job completed after `restarts` requeues, each attempt resuming from the checkpoint the one
    before wrote at its signal, with every epoch once. Returns the job's output."""
    run_dir = run_dir_of(cluster, cwd, job)
    assert cluster.wait_state(job, "COMPLETED", timeout=240) == "COMPLETED"
    out = output_of(cwd, job)
    assert int(cluster.job(job)["Restarts"]) == restarts, out[-3000:]
    stopped, resumed = STOPPED.findall(out), RESUMED.findall(out)
    assert stopped and stopped == resumed, out[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == EPOCHS and epoch_records(run_dir) == list(range(1, EPOCHS + 1))
    assert "\r" not in out
    assert sorted(p.name for p in cwd.glob("*.out")) == [f"largegraph-{job}.out"]
    return out


def test_one_process_on_a_cpu_node_with_the_documented_command(slurm_cluster, tmp_path, job_env, config):
    job = submit(slurm_cluster, tmp_path, job_env, config)
    assert slurm_cluster.wait_state(job, "COMPLETED", timeout=240) == "COMPLETED"
    out = output_of(tmp_path, job)
    assert "1 nodes x 1 processes" in out and f"epochs={EPOCHS}" in out
    assert "\r" not in out
    assert json.loads((run_dir_of(slurm_cluster, tmp_path, job) / "summary.json").read_text())["epochs"] == EPOCHS


def test_two_processes_requeued_by_scontrol_resume_from_their_sigterm_checkpoint(slurm_cluster, tmp_path, job_env,
                                                                                  config):
    job = submit(slurm_cluster, tmp_path, job_env | {"NPROC": "2"}, config)
    freeze_after_first_epoch(slurm_cluster, job, run_dir_of(slurm_cluster, tmp_path, job))
    slurm_cluster.scontrol("requeue", str(job))
    out = assert_resumed_at_signal(slurm_cluster, tmp_path, job)
    assert "1 nodes x 2 processes" in out and "x 2 workers" in out


def test_time_limit_checkpoints_at_the_scripts_signal_and_requeues(slurm_cluster, tmp_path, job_env, config):
    # The script's signal comes 120 s before the limit (B:USR1, as in the header), which the test sets
    # once training runs: to the whole minutes that make the signal due now and leave at least 40 s
    # (slurmctld checks time limits every 30 s).
    job = submit(slurm_cluster, tmp_path, job_env, config, "--time=10", "--signal=B:USR1@120")
    run_dir = run_dir_of(slurm_cluster, tmp_path, job)
    pid = freeze_after_first_epoch(slurm_cluster, job, run_dir)
    elapsed = slurm_cluster.job(job)["RunTime"].split(":")
    minutes = math.ceil((int(elapsed[-2]) * 60 + int(elapsed[-1]) + 40) / 60)
    slurm_cluster.scontrol("update", f"JobId={job}", f"TimeLimit={minutes}")
    wait_for(lambda: "time limit near" in output_of(tmp_path, job), 120, "the script's time-limit signal")
    os.kill(pid, signal.SIGCONT)
    # A requeued job starts again with the same limit, whose signal would be due at once again: the
    # limit goes back to 10 minutes while the job waits (cred_expire) to start again.
    slurm_cluster.wait_state(job, "PENDING", timeout=120)
    slurm_cluster.scontrol("update", f"JobId={job}", "TimeLimit=10")
    out = assert_resumed_at_signal(slurm_cluster, tmp_path, job)
    assert "requeueing job" in out and "(time limit)" in out


@pytest.mark.parametrize("partition", ["low", "low0"])
def test_preempted_job_is_requeued_and_resumes_from_its_sigterm_checkpoint(slurm_cluster, tmp_path, job_env,
                                                                           config, partition):
    """`low` has GraceTime > 0 (the trainers exit within it and the script requeues), `low0` GraceTime=0
    (Slurm requeues at once; the trainers checkpoint within KillWait)."""
    job = submit(slurm_cluster, tmp_path, job_env, config, f"--partition={partition}")
    freeze_after_first_epoch(slurm_cluster, job, run_dir_of(slurm_cluster, tmp_path, job))
    high = slurm_cluster.sbatch("--partition=high", "--exclusive", "--wrap", "true",
                                "--output", str(tmp_path / "high.log"))
    assert slurm_cluster.wait_state(high, "COMPLETED") == "COMPLETED"
    (tmp_path / "high.log").unlink()
    assert_resumed_at_signal(slurm_cluster, tmp_path, job)


def test_scancel_ends_the_job_without_requeue(slurm_cluster, tmp_path, job_env, config):
    job = submit(slurm_cluster, tmp_path, job_env, config)
    freeze_after_first_epoch(slurm_cluster, job, run_dir_of(slurm_cluster, tmp_path, job))
    slurm_cluster.cancel(str(job))
    assert slurm_cluster.wait_state(job, "CANCELLED") == "CANCELLED"
    # Until its processes are gone too (a script that requeued would have done so by then).
    wait_for(slurm_cluster.node_idle, 120, "the node idle again")
    fields = slurm_cluster.job(job)
    assert fields["JobState"] == "CANCELLED" and fields["Restarts"] == "0"
    assert not (run_dir_of(slurm_cluster, tmp_path, job) / "summary.json").exists()


def test_a_run_directory_of_another_job_is_never_resumed(slurm_cluster, tmp_path, job_env, config):
    # Another cluster's (or a reinstalled controller's) job with the same id left its run directory
    # where this job's default one goes: the first start refuses it, in one line.
    next_id = int(slurm_cluster.scontrol("show", "config").split("NEXT_JOB_ID")[1].split("=")[1].split()[0])
    foreign = run_dir_of(slurm_cluster, tmp_path, next_id)
    (foreign / "checkpoints").mkdir(parents=True)
    job = submit(slurm_cluster, tmp_path, job_env, config)
    assert job == next_id
    assert slurm_cluster.wait_state(job, "FAILED") == "FAILED"
    assert slurm_cluster.job(job)["ExitCode"] == "2:0"
    errors = [line for line in output_of(tmp_path, job).splitlines() if "error" in line]
    assert len(errors) == 1 and "holds another job's run" in errors[0]
    assert list(foreign.rglob("*")) == [foreign / "checkpoints"]


def test_a_run_directory_of_another_config_is_never_resumed(slurm_cluster, tmp_path, job_env, config, synth_root):
    # RUN_DIR names a run of the same data with other settings: train refuses it (one line, exit 2).
    other = write_config(tmp_path / "other.yaml", "tiny", synth_root, train={"epochs": 1})
    run_dir = tmp_path / "shared-run"
    assert run_cli("train", other, "--run-dir", run_dir).returncode == 0
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    # MAX_RESTARTS=0: torchrun restarts its workers whatever their exit code, and would repeat the line.
    job = submit(slurm_cluster, tmp_path, job_env | {"RUN_DIR": str(run_dir), "MAX_RESTARTS": "0"}, config)
    assert slurm_cluster.wait_state(job, "FAILED") == "FAILED"
    errors = [line for line in output_of(tmp_path, job).splitlines() if "holds another job's run" in line]
    assert len(errors) == 1 and "sampler.batch_size: 256 -> 50" in errors[0], output_of(tmp_path, job)[-3000:]
    assert slurm_cluster.job(job)["ExitCode"] == "2:0"
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
