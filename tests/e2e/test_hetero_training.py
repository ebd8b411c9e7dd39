"""Typed graphs through the real CLI: RGCN resumes bitwise after SIGKILL, trains on 2 workers in lock
step, links on one relation, TensorBoard; mismatched settings are refused with one line."""
from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import ROOT, run_cli, write_config
from test_resume import final_params, kill_at, train_args

pytestmark = pytest.mark.slow

RGCN = dict(model={"arch": "rgcn", "hidden": 16, "num_bases": 2}, sampler={"fanouts": [4, 4], "batch_size": 128},
            train={"epochs": 2, "lr": 0.01})


def test_rgcn_resume_after_sigkill_matches_uninterrupted_run_bitwise(tmp_path, mag_root):
    cfg = write_config(tmp_path / "job.yaml", "mag-tiny", mag_root, **RGCN,
                       checkpoint={"every_n_steps": 1, "keep_last": 2})
    reference = tmp_path / "reference"
    done = subprocess.run(train_args(cfg, reference), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    total_steps = json.loads((reference / "summary.json").read_text())["steps"]

    rng = random.Random(0)
    run_dir = tmp_path / "killed"
    targets = sorted(rng.sample(range(2, total_steps - 2), 2))
    kills = sum(kill_at(train_args(cfg, run_dir), run_dir, t, rng) for t in targets)
    assert kills >= 1
    finish = subprocess.run(train_args(cfg, run_dir), cwd=ROOT, capture_output=True, text=True)
    assert finish.returncode == 0, finish.stderr[-2000:]
    assert "resumed from checkpoint" in finish.stdout
    expected, got = final_params(reference), final_params(run_dir)
    assert expected.keys() == got.keys() and any("embedding.tables" in k for k in expected)
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


def test_rgcn_on_two_workers_trains_in_lock_step_on_disjoint_shards(tmp_path, mag_root):
    job = {**RGCN, "train": {**RGCN["train"], "loggers": ["jsonl", "tensorboard"]}}
    cfg = write_config(tmp_path / "job.yaml", "mag-tiny", mag_root, **job)
    two = run_cli("train", cfg, "--run-dir", tmp_path / "two", "--nproc", "2", env={"LARGEGRAPH_VERIFY_DDP": "1"})
    assert two.returncode == 0, two.stderr[-3000:]
    assert "ddp check: epoch 2: 2 ranks trained on" in two.stdout and "disjoint, covering all" in two.stdout
    assert "parameters identical on all 2 ranks after each of" in two.stdout
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert 0 <= summary["test_acc"] <= 1
    assert any((tmp_path / "two" / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("sections, message", [
    ({"model": {"arch": "sage"}}, "model.arch sage takes one node type"),
    ({"model": {"arch": "rgcn"}, "sampler": {"relation_fanouts": {"wrote": [2, 2]}}},
     "sampler.relation_fanouts.wrote: 'wrote' is not a relation of this dataset"),
])
def test_mismatched_settings_on_a_typed_dataset_are_one_line_exit_2(tmp_path, mag_root, sections, message):
    cfg = write_config(tmp_path / "job.yaml", "mag-tiny", mag_root, **sections)
    result = run_cli("train", cfg, "--run-dir", tmp_path / "run")
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("largegraph: error")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_typed_arch_on_an_untyped_dataset_is_one_line_exit_2(tmp_path, synth_root):
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root, model={"arch": "rgcn"})
    result = run_cli("train", cfg, "--run-dir", tmp_path / "run")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("largegraph: error")]
    assert len(errors) == 1 and "model.arch rgcn is for typed graphs" in errors[0], result.stderr[-2000:]


def test_hsage_link_prediction_on_one_relation_trains_and_ranks_held_out_edges(tmp_path, mag_root):
    cfg = write_config(tmp_path / "job.yaml", "mag-tiny", mag_root, task="link_prediction",
                       data={"name": "mag-tiny", "root": str(mag_root), "relation": "writes"},
                       sampler={"fanouts": [4, 4], "batch_size": 512, "relation_fanouts": {"cites": [2, 2]}},
                       model={"arch": "hsage", "hidden": 16}, train={"epochs": 1, "lr": 0.01, "export_embeddings": True})
    result = run_cli("train", cfg, "--run-dir", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert 0 < summary["test_mrr"] <= 1
    emb = torch.load(tmp_path / "run" / "embeddings.pt", weights_only=True)
    assert set(emb) == {"paper", "author", "institution", "field_of_study"} and emb["author"].shape[1] == 16
