"""Issue 15's speed-ups, end to end through the CLI: a finished run answers at once, runs stay
repeatable with prefetching and sampled validation on, and `largegraph bench` runs and reports."""
from __future__ import annotations

import json
import re

import torch

from helpers import run_cli, write_config


def _train(cfg, run_dir, *extra):
    out = run_cli("train", cfg, "--run-dir", run_dir, *extra)
    assert out.returncode == 0, out.stderr
    return out


def test_a_finished_run_answers_from_its_summary_and_a_changed_job_trains_on(tmp_path, synth_root):
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root)
    run = tmp_path / "run"
    first = _train(cfg, run)
    summary_line = first.stdout.strip().splitlines()[-1]
    metrics, model = (run / "metrics.jsonl").read_text(), (run / "model.pt").read_bytes()
    for again in (run_cli("train", cfg, "--run-dir", run), run_cli("resume", run)):
        assert again.returncode == 0, again.stderr
        assert "already finished this job" in again.stdout
        assert "dataset " not in again.stdout  # nothing loaded, nothing evaluated
        assert again.stdout.strip().splitlines()[-1] == summary_line
    assert (run / "metrics.jsonl").read_text() == metrics
    assert (run / "model.pt").read_bytes() == model
    # an operator extending the run edits its resolved config and resumes: that trains on
    resolved = run / "config.resolved.yaml"
    resolved.write_text(resolved.read_text().replace("epochs: 2", "epochs: 3"))
    extended = run_cli("resume", run)
    assert extended.returncode == 0, extended.stderr
    assert "resumed from checkpoint" in extended.stdout and "already finished" not in extended.stdout
    more = _train(cfg, run, "train.epochs=4")
    assert "already finished" not in more.stdout
    assert json.loads((run / "summary.json").read_text())["epochs"] == 4


def test_same_job_same_weights_with_prefetch_and_sampled_validation(tmp_path, synth_root):
    # fanouts below the degrees, so that sampling is random and its order could matter
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root, sampler={"fanouts": [3, 3], "prefetch": 2},
                       train={"epochs": 2, "validation": "sampled"})
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        _train(cfg, run)
    a, b = (torch.load(run / "model.pt") for run in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    records = [[r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "epoch"]
               for run in runs]
    assert [r["valid_acc"] for r in records[0]] == [r["valid_acc"] for r in records[1]]
    assert all(r.get("test_acc") is None for r in records[0])  # sampled: the validation split only


def test_bench_prints_both_sides_and_the_ratio_and_writes_json_and_png(tmp_path):
    out = run_cli("bench", "node", "--scale", "0.002", "--epochs", "1", "--out", tmp_path / "bench")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert any(line.startswith("reference ") and "train_epoch_s=" in line for line in lines)
    assert any(line.startswith("largegraph ") and "peak_rss=" in line for line in lines)
    assert re.fullmatch(r"ratio largegraph/reference: \d+\.\d\d \(\d+\.\d\d\.\.\d+\.\d\d over 1 pairs\)", lines[-1])
    record = json.loads((tmp_path / "bench" / "bench.json").read_text())
    pair = record["records"][0]["pairs"][0]
    assert pair["largegraph"]["input_nodes_per_batch"] > 0 and pair["reference"]["input_nodes_per_batch"] > 0
    assert (tmp_path / "bench" / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "bench" / "data").exists()  # the generated graph is removed afterwards


def test_bench_typed_runs_dgls_rgcn_loop_against_ours_and_prints_the_ratio_last(tmp_path):
    out = run_cli("bench", "typed", "--scale", "0.003", "--epochs", "1", "--out", tmp_path / "bench")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert any(line.startswith("reference ") and "test_score=" in line for line in lines)
    assert any(line.startswith("largegraph ") and "test_score=" in line for line in lines)
    assert re.fullmatch(r"ratio largegraph/reference: \d+\.\d\d \(\d+\.\d\d\.\.\d+\.\d\d over 1 pairs\)", lines[-1])
    record = json.loads((tmp_path / "bench" / "bench.json").read_text())
    pair = record["records"][0]["pairs"][0]
    assert record["records"][0]["mode"] == "typed"
    assert pair["largegraph"]["seeds_per_epoch"] == pair["reference"]["seeds_per_epoch"] > 0  # same training papers


def test_bench_refuses_bad_input_in_one_line(tmp_path):
    for args in (("--scale", "0"), ("--scale", "0.00001")):
        out = run_cli("bench", "node", *args, "--out", tmp_path / "b")
        assert out.returncode == 2
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
