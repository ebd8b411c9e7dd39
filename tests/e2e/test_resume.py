"""Checkpoints that survive crashes, through the real CLI: SIGKILL at random points, corruption, full disks, refusals."""

from __future__ import annotations

import errno
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import ROOT, run_cli, write_config

from largegraph.training import checkpoint as ckpt
from largegraph.core.errors import CheckpointError

JOB = dict(sampler={"fanouts": [5, 5], "batch_size": 100}, model={"hidden": 16},
           train={"epochs": 3, "lr": 0.01}, checkpoint={"every_n_steps": 1, "keep_last": 2})


def train_args(cfg: Path, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "largegraph", "train", str(cfg), "--run-dir", str(run_dir), *extra]


def newest_step(run_dir: Path) -> int:
    steps = [int(p.stem.split("-")[1]) for p in (run_dir / "checkpoints").glob("step-*.json")]
    return max(steps, default=-1)


def kill_at(args: list[str], run_dir: Path, target_step: int, rng: random.Random) -> bool:
    """Start training, SIGKILL it shortly after checkpoint `target_step` appears. False if it finished."""
    target_step = max(target_step, newest_step(run_dir) + 1)  # progress past the resume point first
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if newest_step(run_dir) >= target_step:
            # Every step writes a checkpoint, so a random delay lands in a step or in a save.
            time.sleep(rng.uniform(0.0, 0.05))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
    return False


def one_epoch_run(tmp_path: Path, synth_root: Path) -> tuple[Path, Path]:
    """A finished one-epoch run: (its job file, its run directory)."""
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root, train={"epochs": 1})
    run_dir = tmp_path / "run"
    assert run_cli("train", cfg, "--run-dir", run_dir).returncode == 0
    return cfg, run_dir


def final_params(run_dir: Path) -> dict:
    return torch.load(run_dir / "model.pt", weights_only=True)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_resume_after_sigkill_matches_uninterrupted_run_bitwise(tmp_path, synth_root, workers):
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root, **JOB)
    overrides = [f"sampler.num_workers={workers}"]
    reference = tmp_path / "reference"
    done = subprocess.run(train_args(cfg, reference, *overrides), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    total_steps = json.loads((reference / "summary.json").read_text())["steps"]

    rng = random.Random(workers)
    run_dir = tmp_path / "killed"
    targets = sorted(rng.sample(range(2, total_steps - 2), 3))
    kills = sum(kill_at(train_args(cfg, run_dir, *overrides), run_dir, t, rng) for t in targets)
    assert kills >= 2
    finish = subprocess.run(train_args(cfg, run_dir, *overrides), cwd=ROOT, capture_output=True, text=True)
    assert finish.returncode == 0, finish.stderr[-2000:]
    assert "resumed from checkpoint" in finish.stdout

    expected, got = final_params(reference), final_params(run_dir)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2, 3]  # each epoch logged once
    assert sum(r["kind"] == "resume" for r in records) >= kills


def test_corrupt_newest_checkpoint_falls_back_to_previous(tmp_path, synth_root):
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root, train={"epochs": 2},
                       checkpoint={"keep_last": 3, "keep_best": False})
    run_dir = tmp_path / "run"
    assert run_cli("train", cfg, "--run-dir", run_dir).returncode == 0
    manifests = sorted((run_dir / "checkpoints").glob("step-*.json"))
    assert len(manifests) == 2
    newest = manifests[-1].with_suffix(".pt")
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated, as by a dying disk

    result = run_cli("train", cfg, "train.epochs=3", "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "skipping checkpoint" in result.stderr and "checksum mismatch" in result.stderr
    assert f"resumed from checkpoint {manifests[0].stem}" in result.stdout


def test_half_written_checkpoint_is_ignored(tmp_path, synth_root):
    cfg, run_dir = one_epoch_run(tmp_path, synth_root)
    step = newest_step(run_dir)
    # What a kill between writing the tensors and writing the manifest leaves behind.
    (run_dir / "checkpoints" / f"step-{step + 5:010d}.pt").write_bytes(b"partial")
    (run_dir / "checkpoints" / f".step-{step + 6:010d}.pt.tmp-123").write_bytes(b"partial")
    result = run_cli("train", cfg, "train.epochs=2", "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resumed from checkpoint step-{step:010d}" in result.stdout


def test_disk_full_mid_run_fails_cleanly_or_continues_per_policy(tmp_path, synth_root, monkeypatch):
    from largegraph.backends import backend_for
    from largegraph.training.run import run_training

    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root, train={"epochs": 3})
    calls = {"n": 0}
    real_save = ckpt.save_tensors

    def flaky(path, obj):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(path, obj)

    monkeypatch.setattr(ckpt, "save_tensors", flaky)
    with pytest.raises(CheckpointError, match="No space left"):
        run_training(str(cfg), [], backend_for=backend_for, run_dir=str(tmp_path / "fail"), device="cpu")
    assert newest_step(tmp_path / "fail") > 0  # the first epoch's checkpoint survived

    calls["n"] = 0
    line = run_training(str(cfg), ["checkpoint.on_save_error=continue"], backend_for=backend_for,
                        run_dir=str(tmp_path / "go-on"), device="cpu")
    assert "epochs=3" in line


def test_refuses_changed_model_config_and_foreign_checkpoint(tmp_path, synth_root):
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root, train={"epochs": 1})
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    assert run_cli("train", cfg, "--run-dir", run_a).returncode == 0
    assert run_cli("train", cfg, "--run-dir", run_b).returncode == 0

    changed = run_cli("train", cfg, "model.hidden=8", "train.epochs=2", "--run-dir", run_a)
    assert changed.returncode == 2 and "different model/task config" in changed.stderr
    assert "Traceback" not in changed.stderr

    foreign = next((run_b / "checkpoints").glob("step-*.json"))
    result = run_cli("train", cfg, "train.epochs=2", "--run-dir", run_a, "--resume", foreign)
    assert result.returncode == 2 and "belongs to another run" in result.stderr

    never = run_cli("train", cfg, "--run-dir", run_a, "--resume", "never")
    assert never.returncode == 2 and "already holds checkpoints" in never.stderr

    missing = run_cli("resume", tmp_path / "nowhere")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_resume_command_continues_from_run_dir_alone(tmp_path, synth_root):
    cfg, run_dir = one_epoch_run(tmp_path, synth_root)
    # Raise the epoch budget in the run's own resolved config, as an operator extending a run would.
    resolved = run_dir / "config.resolved.yaml"
    resolved.write_text(resolved.read_text().replace("epochs: 1", "epochs: 2"))
    result = run_cli("resume", run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resumed from checkpoint" in result.stdout and "epochs=2" in result.stdout.splitlines()[-1]

