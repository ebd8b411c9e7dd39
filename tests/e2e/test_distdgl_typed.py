"""Typed graphs on DGL's engine: an ogbn-mag-shaped graph partitioned by type, RGCN node classification
across two simulated hosts (better than the majority class, predictions in the dataset's paper ids),
and a stopped typed distdgl run resuming from its checkpoint."""
from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from helpers import killed_if_left, run_cli
from test_distdgl import (HOSTS, epochs_done, job_processes, partitioned, start, two_hosts,  # noqa: F401 (fixture)
                         wait_for)

pytestmark = pytest.mark.slow

RGCN = dict(model={"arch": "rgcn", "hidden": 32, "num_bases": 2},
            sampler={"fanouts": [5, 5], "batch_size": 256, "eval_batch_size": 4096,
                     "relation_fanouts": {"cites": [3, 3]}},
            train={"epochs": 4, "lr": 0.02})


@pytest.fixture(scope="module")
def typed_root(tmp_path_factory) -> Path:
    """`mag-dist`: ogbn-mag-shaped (papers, authors, institutions, fields; featureless but papers) at
    scale 0.002 with 8 venues, so that a few epochs learn them."""
    from largegraph.data.synthetic_hetero import SynthHeteroParams, write_synthetic_hetero_dataset

    root = tmp_path_factory.mktemp("typed")
    write_synthetic_hetero_dataset(root, "mag-dist", SynthHeteroParams(scale=0.002, num_classes=8, homophily=0.6,
                                                                       seed=4))
    return root


def test_rgcn_on_two_partitions_on_two_simulated_hosts(typed_root, two_hosts, tmp_path):
    job, part_config = partitioned(tmp_path, typed_root, 2, "mag-dist", RGCN)
    stamp = json.loads((part_config.parent / "largegraph-partition.json").read_text())
    assert stamp["dataset"]["target"] == "paper" and len(stamp["parts"]) == 2
    ip_config = tmp_path / "ip_config.txt"
    ip_config.write_text("".join(f"{host} 30060\n" for host in HOSTS))
    done = run_cli("train", job, f"distributed.part_config={part_config}", "--ip-config", ip_config,
                   f"distributed.remote_shell={two_hosts}", "train.export_embeddings=true", "--run-dir",
                   tmp_path / "dist", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "dist" / "summary.json").read_text())
    # one trainer per host, each on its own partition's share of the training papers, together all of them
    shares = json.loads((tmp_path / "dist" / "distdgl" / "trainers.json").read_text())
    assert [s["partition"] for s in shares] == [0, 1]
    assert sum(s["train_nodes"] for s in shares) == sum(p["train"] for p in stamp["parts"])
    # predictions are of every paper, in the dataset's paper ids, and beat always naming the commonest venue
    pred = torch.load(tmp_path / "dist" / "predictions.pt")
    test = pred["test_idx"]
    assert len(test) == sum(p["test"] for p in stamp["parts"]) and len(pred["pred"]) == len(pred["label"])
    assert torch.equal(test, torch.sort(test).values) and int(test.max()) < len(pred["label"])
    labels = pred["label"][test]
    majority = float(torch.bincount(labels).max()) / len(labels)
    print(f"typed distdgl: test_acc {summary['test_acc']:.4f}, majority class {majority:.4f}")
    assert summary["test_acc"] > majority + 0.05, (summary["test_acc"], majority)
    assert float((pred["pred"][test] == labels).float().mean()) == pytest.approx(summary["test_acc"])
    emb = torch.load(tmp_path / "dist" / "embeddings.pt")
    assert set(emb) == {"paper", "author", "institution", "field_of_study"}
    assert emb["paper"].shape[0] == len(pred["label"])
    assert job_processes(tmp_path / "dist") == []


def test_a_stopped_typed_run_resumes_from_its_checkpoint(typed_root, tmp_path):
    job, part_config = partitioned(tmp_path, typed_root, 1, "mag-dist", RGCN)
    run_dir = tmp_path / "run"
    with killed_if_left(start(job, part_config, run_dir, "train.epochs=3")) as proc:
        wait_for(lambda: epochs_done(run_dir) >= 1 or proc.poll() is not None, what="the first epoch")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, err[-3000:]
    again = run_cli("train", job, f"distributed.part_config={part_config}", "train.epochs=3", "--distdgl-local", "2",
                    "--run-dir", run_dir, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    kinds = [json.loads(line)["kind"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert "resume" in kinds and kinds.count("epoch") == 3 and kinds[-1] == "final"
    assert job_processes(run_dir) == []
