"""`largegraph bench typed`: DGL's documented RGCN loop trains on an OGB-layout typed graph, on the graph
largegraph loads, with the settings the largegraph job gets."""
from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from largegraph.benchmark import command, reference_typed
from largegraph.config import DataConfig, load_config
from largegraph.data import load_dataset
from largegraph.data.hetero import reverse_name
from largegraph.data.synthetic_hetero import SynthHeteroParams, write_synthetic_hetero_dataset

NAME = "tiny-mag"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("typed")
    write_synthetic_hetero_dataset(root, NAME, SynthHeteroParams(scale=0.002, num_classes=4, feat_dim=8, seed=1))
    return root


def test_the_reference_loop_trains_and_reports_what_the_bench_reads(root, tmp_path):
    out = tmp_path / "reference.json"
    assert reference_typed.main(["typed", "--root", str(root), "--name", NAME, "--out", str(out), "--epochs", "2",
                                 "--fanouts", "5,4", "--batch-size", "128", "--eval-batch-size", "512",
                                 "--hidden", "16", "--layers", "2", "--lr", "0.01", "--weight-decay", "0"]) == 0
    result = json.loads(out.read_text())
    train = len(load_dataset(DataConfig(name=NAME, root=str(root))).split["train"])
    assert [e["seeds"] for e in result["epochs"]] == [train, train]
    assert all(e["batches"] == math.ceil(train / 128) for e in result["epochs"])
    # input nodes of every type (not the number of types) and the edges of every relation's blocks
    assert all(e["input_nodes"] > 128 * e["batches"] and e["sampled_edges"] > e["input_nodes"] for e in result["epochs"])
    assert result["metric"] == "acc" and 0.0 <= result["test_score"] <= 1.0
    assert all(e["train_s"] > 0 and 0.0 <= e["valid_acc"] <= 1.0 for e in result["epochs"])


def test_the_reference_reads_the_graph_largegraph_trains_on(root):
    ours = load_dataset(DataConfig(name=NAME, root=str(root)))
    args = argparse.Namespace(root=str(root), name=NAME)
    g, target, labels, split, num_classes = reference_typed.load(args)
    assert (target, num_classes) == (ours.target, ours.num_classes)
    assert sorted(g.canonical_etypes) == sorted(ours.graph.canonical_etypes)
    assert any(reverse_name(r) in g.canonical_etypes for r in g.canonical_etypes)  # rev_ relations on both sides
    for relation in g.canonical_etypes:
        theirs = torch.stack(g.edges(etype=relation, order="srcdst"), 1)
        mine = torch.stack(ours.graph.edges(etype=relation, order="srcdst"), 1)
        assert torch.equal(torch.unique(theirs, dim=0), torch.unique(mine, dim=0)), relation
    for part in ("train", "valid", "test"):
        assert torch.equal(split[part].sort().values, ours.split[part].sort().values)
    assert torch.equal(labels, ours.graph.nodes[target].data["label"])
    assert torch.equal(g.nodes[target].data["feat"].float(), ours.graph.nodes[target].data["feat"])


def test_both_sides_get_the_settings_of_dgls_ogbn_mag_example(tmp_path):
    s = command.SETTINGS["typed"]
    assert (s.arch, s.fanouts, s.batch_size, s.hidden, s.layers, s.lr) == ("rgcn", (25, 20), 1024, 64, 2, 0.01)
    job = load_config(command.job_file("typed", NAME, tmp_path, 3, 0, tmp_path / "job.yaml"))
    assert (job.task, job.model.arch, job.model.num_layers, job.model.hidden, job.model.num_bases) == (
        "node_classification", "rgcn", 2, 64, 0)
    assert (job.sampler.fanouts, job.sampler.batch_size, job.train.lr, job.train.epochs) == ([25, 20], 1024, 0.01, 3)
    argv = command.reference_argv("typed", NAME, tmp_path, 3, 0, tmp_path / "out.json")
    assert argv[1:4] == ["-m", "largegraph.benchmark.reference_typed", "typed"]
    options = dict(zip(argv[4::2], argv[5::2]))
    assert options["--fanouts"] == "25,20" and options["--batch-size"] == "1024" and options["--hidden"] == "64"
    assert options["--layers"] == "2" and float(options["--lr"]) == 0.01 and float(options["--dropout"]) == 0.5
    assert float(options["--weight-decay"]) == job.train.weight_decay and options["--epochs"] == "3"


def test_the_untyped_modes_keep_their_settings(tmp_path):
    for mode in ("node", "link"):
        job = load_config(command.job_file(mode, "x", tmp_path, 2, 0, tmp_path / f"{mode}.yaml"))
        assert (job.model.arch, job.sampler.fanouts, job.model.hidden, job.model.num_layers) == ("sage", [10, 10, 10], 256, 3)
        assert (job.train.lr, job.train.weight_decay) == (1e-3, 5e-4)
        argv = command.reference_argv(mode, "x", tmp_path, 2, 0, tmp_path / "o.json")
        assert argv[2:4] == ["largegraph.benchmark.reference", mode]
