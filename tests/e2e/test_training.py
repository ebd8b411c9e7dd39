"""Training end to end through the CLI: accuracy targets, run directory contents, report."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from helpers import ROOT, SHARED_DATA, run_cli, train_seeds, write_config

FAST_JOB = dict(sampler={"fanouts": [10, 10], "batch_size": 1024}, model={"hidden": 64},
                train={"epochs": 4, "lr": 0.005})


@pytest.fixture(scope="module")
def social_root(tmp_path_factory) -> Path:
    """The acceptance graph: 20k nodes, homophily 0.8, noisy features, written in OGB's layout."""
    root = tmp_path_factory.mktemp("social")
    result = run_cli("data", "synth", "node", "--name", "social", "--nodes", "20000", "--avg-degree", "20",
                     "--classes", "8", "--feat-dim", "64", "--homophily", "0.8", "--root", root)
    assert result.returncode == 0, result.stderr
    return root


def train(tmp_path: Path, root: Path, name: str, *overrides: str, **sections) -> tuple[dict, Path, str]:
    run_dir = tmp_path / f"run-{name}"
    cfg = write_config(tmp_path / f"{name}.yaml", name if name in ("cora",) else "social", root,
                       **{**FAST_JOB, **sections})
    result = run_cli("train", cfg, *overrides, "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    return summary, run_dir, result.stdout


@pytest.mark.slow
def test_sage_beats_mlp_by_a_margin_on_homophilous_graph(tmp_path, social_root):
    sage, run_dir, stdout = train(tmp_path, social_root, "sage")
    mlp, _, _ = train(tmp_path, social_root, "mlp", "model.arch=mlp")
    assert sage["test_acc"] >= 0.90, sage
    assert sage["test_acc"] - mlp["test_acc"] >= 0.20, (sage, mlp)

    # The run directory holds everything a user (and a resume) needs.
    last = stdout.strip().splitlines()[-1]
    assert last.startswith(f"test_acc={sage['test_acc']:.4f} val_acc=") and f"run_dir={run_dir}" in last
    resolved = yaml.safe_load((run_dir / "config.resolved.yaml").read_text())
    assert resolved["model"]["hidden"] == 64 and resolved["sampler"]["eval_batch_size"] == 1024 and resolved["train"]["optimizer"] == "adam"
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4]
    assert all(r["batches_per_s"] > 0 and "valid_acc" in r for r in epochs)
    assert records[-1]["kind"] == "final" and records[-1]["test_acc"] == sage["test_acc"]
    assert any((run_dir / "checkpoints").glob("step-*.pt"))
    state = torch.load(run_dir / "model.pt", weights_only=True)
    assert "head.weight" in state and state["head.weight"].shape[0] == 8
    pred = torch.load(run_dir / "predictions.pt", weights_only=True)
    test_idx = pred["test_idx"]
    acc = (pred["pred"][test_idx] == pred["label"][test_idx]).float().mean().item()
    assert abs(acc - sage["test_acc"]) < 1e-6
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    (run_dir / "curves.png").unlink()
    report = run_cli("report", run_dir)
    assert report.returncode == 0 and (run_dir / "curves.png").exists()
    assert f"test_acc={sage['test_acc']:.4f}" in report.stdout and "valid_acc" in report.stdout


def crash_report(stderr: str) -> str:
    """The Python frames faulthandler printed, if the process died in native code."""
    frames = [line for line in stderr.splitlines() if line.strip().startswith(("File ", "Fatal", "Thread", "Current"))]
    return "\n".join(frames[:60]) or stderr[-2000:]


# In-process sampling: three times, on a loaded machine, a job with ONE sampling worker process died
# with SIGSEGV in DGL's gspmm in the parent (GAT twice, GCN once; never reproduced in isolation);
# see the README's known issues. Worker sampling is covered by test_sampling and test_checkpoint.
@pytest.mark.parametrize("arch, workers", [("gat", 0), ("gcn", 0), ("gin", 0)])
def test_other_encoders_train_through_the_same_loop(tmp_path, synth_root, arch, workers):
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root, model={"arch": arch, "hidden": 16},
                       train={"epochs": 2})
    result = run_cli("train", cfg, "--run-dir", tmp_path / "run", f"sampler.num_workers={workers}")
    assert result.returncode == 0, crash_report(result.stderr)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs"] == 2 and 0.0 <= summary["test_acc"] <= 1.0


def test_early_stopping_ends_the_run(tmp_path, synth_root):
    # lr=1e-7 never improves after the first evaluation, so patience 2 stops at epoch 3.
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root,
                       train={"epochs": 50, "lr": 1e-7, "early_stopping_patience": 2})
    result = run_cli("train", cfg, "--run-dir", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "early stopping" in result.stdout
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] < 50


def test_ema_weights_are_what_is_evaluated_and_saved(tmp_path, synth_root):
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root, model={"hidden": 16},
                       train={"epochs": 2, "lr": 0.05, "ema_decay": 0.8, "restore_best": False},
                       checkpoint={"every_n_steps": 1, "keep_last": 1000})
    result = run_cli("train", cfg, "--run-dir", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    states = [torch.load(p, weights_only=True) for p in sorted((tmp_path / "run" / "checkpoints").glob("step-*.pt"))]
    assert len(states) > 2
    for before, after in zip(states, states[1:]):  # ema_t = 0.8 ema_(t-1) + 0.2 weights_t, every step
        for name, weights in after["model"].items():
            if weights.is_floating_point():
                torch.testing.assert_close(after["ema"][name], 0.8 * before["ema"][name] + 0.2 * weights)
    last = states[-1]
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert all(torch.equal(saved[k], last["ema"][k]) for k in saved)
    assert any(not torch.equal(saved[k], last["model"][k]) for k in saved)
    # the average is part of the resumable state: one epoch, then a resume to two, ends the same
    first = run_cli("train", cfg, "train.epochs=1", "--run-dir", tmp_path / "split")
    second = run_cli("train", cfg, "--run-dir", tmp_path / "split", "--resume", "auto")
    assert first.returncode == 0 and second.returncode == 0, (first.stderr + second.stderr)[-2000:]
    resumed = torch.load(tmp_path / "split" / "model.pt", weights_only=True)
    assert all(torch.equal(saved[k], resumed[k]) for k in saved)


def _cora_root(tmp_path_factory) -> Path:
    if not (SHARED_DATA / "planetoid_cora").is_dir():
        pytest.skip(f"{SHARED_DATA / 'planetoid_cora'} is not present")
    root = tmp_path_factory.mktemp("cora")
    result = run_cli("data", "planetoid", "--src", SHARED_DATA / "planetoid_cora", "--root", root)
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture(scope="module")
def cora_root(tmp_path_factory) -> Path:
    return _cora_root(tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("config, published", [("cora_sage.yaml", 0.79), ("cora_gcn.yaml", 0.815),
                                               ("cora_gin.yaml", 0.776)])
def test_real_cora_within_two_points_of_published(tmp_path, cora_root, config, published):
    """Published (shared/data/README): GCN 81.5, GraphSAGE-mean about 79-81 (we hold it to 79); GIN 77.6
    (configs/cora_gin.yaml names the source)."""
    root = ROOT
    scores = [summary["test_acc"]
              for summary in train_seeds(root / "configs" / config, (0, 1, 2), tmp_path, f"data.root={cora_root}")]
    mean = sum(scores) / len(scores)
    assert mean >= published - 0.02, scores


def test_a_tensorboard_run_writes_scalars_tensorboard_reads(tmp_path, synth_root):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = write_config(tmp_path / "tb.yaml", "tiny", synth_root, train={"epochs": 2, "loggers": ["jsonl", "tensorboard"]})
    result = run_cli("train", cfg, "--run-dir", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"step/loss", "step/lr", "step/examples_per_s", "epoch/loss", "epoch/lr", "epoch/nodes_per_s",
            "epoch/valid_acc"} <= tags
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    # every figure of the record, whichever the evaluation wrote (train/test too when it is exact)
    assert {f"epoch/{k}" for k, v in epochs[-1].items() if k not in ("kind", "epoch", "step")} <= tags
    assert [e.step for e in events.Scalars("epoch/valid_acc")] == [r["step"] for r in epochs]
    assert [e.value for e in events.Scalars("epoch/valid_acc")] == pytest.approx([r["valid_acc"] for r in epochs])
    steps = [e.step for e in events.Scalars("step/loss")]
    assert steps == list(range(1, epochs[-1]["step"] + 1))
    assert "config" in "".join(events.Tags()["tensors"])
