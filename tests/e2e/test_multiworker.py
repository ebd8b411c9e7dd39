"""Data-parallel training with real worker processes started by torchrun (gloo on CPU)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, run_cli, write_config

from largegraph.training.distributed import DistEnv, from_env
from largegraph.launcher import torchrun_args
from largegraph.training.rundir import RunDir

pytestmark = pytest.mark.slow


def _job(tmp_path: Path, synth_root: Path, **train) -> Path:
    return write_config(tmp_path / "job.yaml", "tiny", synth_root,
                        sampler={"fanouts": [5, 5], "batch_size": 64, "eval_batch_size": 1024},
                        train={"epochs": 4, "lr": 0.01, **train}, checkpoint={"every_n_steps": 2})


def _start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "largegraph", *map(str, args)], cwd=ROOT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(run_dir: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not any((run_dir / "checkpoints").glob("step-*.json")):
        assert proc.poll() is None, f"training ended before its first checkpoint:\n{proc.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.02)


def _worker_pid(launcher_pid: int, rank: int) -> int:
    """The pid of the torchrun worker with RANK=rank among the launcher's children."""
    for child in Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split():
        try:
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return int(child)
    raise AssertionError(f"no worker with RANK={rank} under pid {launcher_pid}")


def _records(run_dir: Path, kind: str) -> list[dict]:
    return [r for r in RunDir(run_dir).read_metrics() if r["kind"] == kind]


def test_env_outside_torchrun_is_a_world_of_one():
    assert from_env({}) == DistEnv()
    env = from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "TORCHELASTIC_RESTART_COUNT": "2",
                    "TORCHELASTIC_RUN_ID": "abc"})
    assert (env.rank, env.world_size, env.local_rank, env.restart_count, env.run_id) == (3, 4, 1, 2, "abc")
    assert env.enabled and not env.is_main


def test_torchrun_command_runs_largegraph_as_a_module():
    args = torchrun_args(2, 1, ["train", "c.yaml"])
    assert args[-4:] == ["--module", "largegraph", "train", "c.yaml"]
    assert "--nproc-per-node=2" in args and "--max-restarts=1" in args


def test_two_workers_reach_single_process_accuracy_in_lock_step_on_disjoint_shards(tmp_path, synth_root):
    cfg = _job(tmp_path, synth_root, epochs=10)
    single = run_cli("train", cfg, "--run-dir", tmp_path / "one")
    assert single.returncode == 0, single.stderr
    two = run_cli("train", cfg, "--run-dir", tmp_path / "two", "--nproc", "2",
                  env={"LARGEGRAPH_VERIFY_DDP": "1"})
    assert two.returncode == 0, two.stderr
    # Every epoch: the two ranks' seeds are disjoint and cover the 1200 training nodes; after every
    # optimizer step the ranks' parameters are bit-identical (the trainer raises otherwise).
    for epoch in range(1, 11):
        assert f"ddp check: epoch {epoch}: 2 ranks trained on 1200 seeds, disjoint, covering all 1200" in two.stdout
    steps = json.loads((tmp_path / "two" / "summary.json").read_text())["steps"]
    assert steps == 10 * 10  # 1200 seeds / (2 ranks x 64) per step, last step folded in
    assert f"parameters identical on all 2 ranks after each of {steps} steps" in two.stdout
    acc = {name: json.loads((tmp_path / name / "summary.json").read_text())["test_acc"] for name in ("one", "two")}
    assert acc["one"] > 0.85
    assert abs(acc["one"] - acc["two"]) <= 0.02, acc
    assert all(r["seeds"] == 1200 for r in _records(tmp_path / "two", "epoch"))


def test_sigkilled_worker_is_restarted_and_the_run_resumes_from_its_checkpoint(tmp_path, synth_root):
    run_dir = tmp_path / "run"
    proc = _start("train", _job(tmp_path, synth_root), "--run-dir", run_dir, "--nproc", "2", "--max-restarts", "1")
    _wait_for_checkpoint(run_dir, proc)
    os.kill(_worker_pid(proc.pid, 1), signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    resumes = _records(run_dir, "resume")
    assert len(resumes) == 1 and resumes[0]["world_size"] == 2
    # Resumed from a real mid-run checkpoint, not from the start.
    assert resumes[0]["step"] > 0 and resumes[0]["checkpoint"] == f"step-{resumes[0]['step']:010d}"
    assert "resumed from checkpoint" in out
    final = _records(run_dir, "final")
    assert len(final) == 1 and final[0]["epochs"] == 4 and final[0]["test_acc"] > 0.6
    assert [r["epoch"] for r in _records(run_dir, "epoch")] == [1, 2, 3, 4]


def test_worker_killed_without_restarts_fails_with_one_line(tmp_path, synth_root):
    run_dir = tmp_path / "run"
    proc = _start("train", _job(tmp_path, synth_root), "--run-dir", run_dir, "--nproc", "2")
    _wait_for_checkpoint(run_dir, proc)
    os.kill(_worker_pid(proc.pid, 1), signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    lines = [line for line in err.splitlines() if line.startswith("largegraph: error")]
    assert len(lines) == 1 and "rank 1" in lines[0] and "SIGKILL" in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("first,then", [(2, 1), (1, 2)])
def test_run_stopped_mid_epoch_resumes_with_another_number_of_workers(tmp_path, synth_root, first, then):
    run_dir = tmp_path / "run"
    cfg = _job(tmp_path, synth_root)
    proc = _start("train", cfg, "--run-dir", run_dir, "--nproc", first)
    _wait_for_checkpoint(run_dir, proc)
    proc.send_signal(signal.SIGTERM)  # preemption: checkpoint at the next batch, exit 143
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "stopped on SIGTERM after writing checkpoint" in err
    resumed = run_cli("train", cfg, "--run-dir", run_dir, "--nproc", then)
    assert resumed.returncode == 0, resumed.stderr
    (resume,) = _records(run_dir, "resume")
    assert (resume["saved_world_size"], resume["world_size"]) == (first, then)
    if resume["offset"]:
        assert "re-sharded over the new workers" in resumed.stdout
    # No seed skipped or repeated: every epoch, including the one cut in two, trained on each of
    # the 1200 training nodes once.
    epochs = _records(run_dir, "epoch")
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4]
    assert all(r["seeds"] == 1200 for r in epochs), [r["seeds"] for r in epochs]
    assert _records(run_dir, "final")[0]["test_acc"] > 0.6


def test_more_workers_than_training_seeds_is_one_clear_error(tmp_path):
    from largegraph.data.synthetic import SynthNodeParams, write_synthetic_node_dataset

    # 40 nodes, 5% for training: two training nodes for three workers.
    params = SynthNodeParams(num_nodes=40, avg_degree=4, num_classes=2, feat_dim=4, split_ratios=(0.05, 0.5, 0.45))
    write_synthetic_node_dataset(tmp_path, "few", params, raw_format="csv")
    cfg = write_config(tmp_path / "job.yaml", "few", tmp_path)
    result = run_cli("train", cfg, "--run-dir", tmp_path / "r", "--nproc", "3")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("largegraph: error")]
    assert errors == ["largegraph: error: 3 workers but only 2 training seeds; use at most 2 workers (--nproc)"], \
        result.stderr
    assert "Traceback" not in result.stderr


def test_nccl_without_cuda_is_one_clear_error(tmp_path, synth_root):
    result = run_cli("train", _job(tmp_path, synth_root), "--run-dir", tmp_path / "r", "--nproc", "2",
                     "--backend", "nccl", "--device", "cpu")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("largegraph: error")]
    assert errors == ["largegraph: error: --backend nccl needs CUDA GPUs (one per worker); use --backend gloo "
                      "or --device cuda"], result.stderr
    assert "Traceback" not in result.stderr


def test_nproc_inside_torchrun_is_refused(tmp_path, synth_root):
    result = run_cli("train", _job(tmp_path, synth_root), "--nproc", "2", env={"TORCHELASTIC_RUN_ID": "x"})
    assert result.returncode == 2
    assert "torchrun's --nproc-per-node" in result.stderr


def test_rendezvous_that_never_completes_times_out_with_one_line(tmp_path, synth_root):
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "largegraph.launcher", "--nnodes", "2", "--nproc-per-node", "1",
         "--rdzv-backend", "c10d", "--rdzv-endpoint", f"localhost:{port}", "--rdzv-id", "lonely",
         "--rdzv-conf", "join_timeout=3", "-m", "largegraph", "train", str(_job(tmp_path, synth_root))],
        cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"largegraph: error: rendezvous timed out: not all of --nnodes 2 joined localhost:{port} (id lonely) in "
        "time; start the same command on every node with the same rendezvous id, and check that every node "
        "reaches the endpoint"], result.stderr
    assert time.monotonic() - start < 60
