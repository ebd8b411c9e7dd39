"""Synthetic node graphs: round trip through OGB's loader, determinism, structure, learnability."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from largegraph.config import DataConfig
from largegraph.data import load_dataset
from largegraph.data.dataset_format import META_FILE
from largegraph.data.ogb import load_ogb_node_dataset
from largegraph.data.synthetic import (
    SynthNodeParams,
    generate_node_graph,
    write_synthetic_node_dataset,
)
from largegraph.core.errors import DatasetError

SMALL = SynthNodeParams(num_nodes=3000, avg_degree=12.0, num_classes=5, feat_dim=16, seed=3)
# The acceptance-test shape: default model parameters at 20k nodes.
MEDIUM = SynthNodeParams(num_nodes=20_000)


@pytest.fixture(scope="module")
def medium_graph() -> dict:
    return generate_node_graph(MEDIUM)


@pytest.mark.parametrize("layout", ["csv", "binary"])
def test_round_trip_through_ogb_loader(tmp_path, layout):
    expected = generate_node_graph(SMALL)
    directory = write_synthetic_node_dataset(tmp_path, "synth-small", SMALL, raw_format=layout)
    meta = json.loads((directory / META_FILE).read_text())
    assert meta["ogb_meta"]["binary"] == str(layout == "binary")
    assert meta["info"]["generator"] == "largegraph.synthetic"
    assert meta["info"]["params"]["num_nodes"] == SMALL.num_nodes

    data = load_ogb_node_dataset("synth-small", tmp_path)
    g = data.graph
    edges = expected["edges"]
    assert g.num_nodes() == SMALL.num_nodes
    assert data.num_classes == SMALL.num_classes
    # Stored once per undirected pair; OGB adds no reverse edges for our datasets.
    assert g.num_edges() == len(edges)
    src, dst = g.edges()
    assert torch.equal(src, torch.from_numpy(edges[:, 0]))
    assert torch.equal(dst, torch.from_numpy(edges[:, 1]))
    assert g.ndata["feat"].dtype == torch.float32
    assert torch.equal(g.ndata["feat"], torch.from_numpy(expected["feat"]))
    assert torch.equal(g.ndata["label"], torch.from_numpy(expected["labels"]))
    for part in ("train", "valid", "test"):
        assert torch.equal(data.split[part], torch.from_numpy(expected["split"][part]))


def test_arrays_are_well_formed():
    data = generate_node_graph(SMALL)
    n, edges = SMALL.num_nodes, data["edges"]
    assert edges.dtype == np.int64 and edges.shape[1] == 2
    assert (edges[:, 0] < edges[:, 1]).all()  # canonical (min, max): no self-loops, stored once
    keys = edges[:, 0] * n + edges[:, 1]
    assert len(np.unique(keys)) == len(keys)
    assert data["feat"].shape == (n, SMALL.feat_dim) and data["feat"].dtype == np.float32
    assert data["labels"].shape == (n,) and data["labels"].dtype == np.int64
    assert data["labels"].min() >= 0 and data["labels"].max() < SMALL.num_classes
    parts = [data["split"][k] for k in ("train", "valid", "test")]
    assert all(p.dtype == np.int64 for p in parts)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(n))  # disjoint and covering
    assert abs(len(parts[0]) / n - 0.6) < 1e-3
    noisy = (data["labels"] != data["true_labels"]).mean()
    assert abs(noisy - SMALL.label_noise) < 0.01


def test_same_seed_same_arrays_other_seed_differs():
    a, b = generate_node_graph(SMALL), generate_node_graph(SMALL)
    c = generate_node_graph(dataclasses.replace(SMALL, seed=SMALL.seed + 1))
    for key in ("edges", "feat", "labels", "true_labels"):
        assert np.array_equal(a[key], b[key])
        assert a[key].tobytes() == b[key].tobytes()
    for key in ("train", "valid", "test"):
        assert np.array_equal(a["split"][key], b["split"][key])
    assert a["info"] == b["info"]
    assert not np.array_equal(a["edges"], c["edges"])
    assert not np.array_equal(a["feat"], c["feat"])
    assert not np.array_equal(a["labels"], c["labels"])
    assert not np.array_equal(a["split"]["train"], c["split"]["train"])


def test_feature_dim_does_not_change_the_graph():
    a = generate_node_graph(SMALL)
    b = generate_node_graph(dataclasses.replace(SMALL, feat_dim=7))
    assert np.array_equal(a["edges"], b["edges"]) and np.array_equal(a["labels"], b["labels"])


def test_homophily_degrees_and_edge_count(medium_graph):
    edges, y = medium_graph["edges"], medium_graph["true_labels"]
    measured = float((y[edges[:, 0]] == y[edges[:, 1]]).mean())
    assert abs(measured - MEDIUM.homophily) < 0.03
    assert medium_graph["info"]["edge_homophily"] == pytest.approx(measured)

    target = MEDIUM.num_nodes * MEDIUM.avg_degree / 2
    assert abs(len(edges) - target) <= 0.05 * target

    degree = np.bincount(edges.ravel(), minlength=MEDIUM.num_nodes)
    assert degree.max() > 10 * degree.mean()  # hubs exist...
    assert degree.max() < 0.2 * MEDIUM.num_nodes  # ...but no star
    assert np.median(degree) < degree.mean()  # right-skewed: most nodes are below the mean
    assert medium_graph["info"]["max_degree"] == int(degree.max())


@pytest.mark.parametrize("homophily", [0.0, 0.35, 1.0])
def test_homophily_follows_parameter(homophily):
    p = dataclasses.replace(SMALL, homophily=homophily)
    data = generate_node_graph(p)
    assert abs(data["info"]["edge_homophily"] - homophily) < 0.03


def _propagate(edges: np.ndarray, n: int, x: np.ndarray) -> np.ndarray:
    """Mean of neighbours' rows over the symmetrised graph (zero for isolated nodes)."""
    import scipy.sparse as sp

    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    cols = np.concatenate([edges[:, 1], edges[:, 0]])
    adj = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n))
    deg = np.asarray(adj.sum(axis=1)).ravel()
    return sp.diags((1.0 / np.maximum(deg, 1)).astype(np.float32)) @ adj @ x


def test_default_calibration_separates_graph_models_from_mlps(medium_graph):
    """Proxy for the acceptance test (GraphSAGE >= 0.90 and >= 0.20 above an MLP): a linear model on
    the raw features stands in for the MLP, one on [x, 1-hop mean, 2-hop mean] for 2-layer SAGE."""
    from sklearn.linear_model import LogisticRegression

    x, y, split = medium_graph["feat"], medium_graph["labels"], medium_graph["split"]
    h1 = _propagate(medium_graph["edges"], MEDIUM.num_nodes, x)
    h2 = _propagate(medium_graph["edges"], MEDIUM.num_nodes, h1)
    tr, te = split["train"], split["test"]

    def score(features):
        clf = LogisticRegression(max_iter=300).fit(features[tr], y[tr])
        return clf.score(features[te], y[te])

    mlp = score(x)
    sage = score(np.hstack([x, h1, h2]))
    assert 0.45 <= mlp <= 0.65, mlp
    assert sage >= 0.94, sage
    assert sage - mlp >= 0.25


@pytest.mark.parametrize(
    "change, flag",
    [
        (dict(num_nodes=50), "--nodes"),
        (dict(num_nodes=3000.0), "--nodes"),
        (dict(num_classes=1), "--classes"),
        (dict(avg_degree=0), "--avg-degree"),
        (dict(avg_degree=3000), "--avg-degree"),
        (dict(avg_degree=float("nan")), "--avg-degree"),
        (dict(avg_degree=2000), "--avg-degree"),  # valid range, but too dense to build
        (dict(feat_dim=0), "--feat-dim"),
        (dict(homophily=1.2), "--homophily"),
        (dict(homophily=-0.1), "--homophily"),
        (dict(feature_signal=-1.0), "--feature-signal"),
        (dict(label_noise=1.0), "--label-noise"),
        (dict(degree_exponent=2.0), "--degree-exponent"),
        (dict(split_ratios=(0.6, 0.2, 0.1)), "--split-ratios"),
        (dict(split_ratios=(0.8, 0.2, 0.0)), "--split-ratios"),
        (dict(split_ratios=(0.5, 0.5)), "--split-ratios"),
        (dict(seed=-1), "--seed"),
    ],
)
def test_bad_params_name_the_flag(change, flag):
    with pytest.raises(DatasetError) as info:
        generate_node_graph(dataclasses.replace(SMALL, **change))
    message = str(info.value)
    assert flag in message and "\n" not in message


def test_bad_layout_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="layout"):
        write_synthetic_node_dataset(tmp_path, "synth-x", SMALL, raw_format="parquet")


def _edge_keys(src: torch.Tensor, dst: torch.Tensor, n: int) -> set[int]:
    return set((src * n + dst).tolist())


@pytest.mark.parametrize("reverse", ["auto", "true", "false"])
def test_prepare_node_graph_reverse_edges(synth_root, reverse):
    raw = load_ogb_node_dataset("tiny", synth_root)
    data = load_dataset(DataConfig(name="tiny", root=str(synth_root), add_reverse_edges=reverse))
    e, n = raw.graph.num_edges(), raw.num_nodes
    src, dst = raw.graph.edges()
    added = reverse != "false"  # our datasets store each undirected edge once
    assert data.info["reverse_edges_added"] is added and data.info["self_loops"] is False
    assert data.graph.num_edges() == (2 * e if added else e)
    keys = _edge_keys(*data.graph.edges(order="srcdst"), n)  # CSC-only graph: no edge-id order
    assert _edge_keys(src, dst, n) <= keys
    assert (_edge_keys(dst, src, n) <= keys) is added


def test_prepare_node_graph_self_loops_and_feature_norm(synth_root):
    raw = load_ogb_node_dataset("tiny", synth_root)
    data = load_dataset(DataConfig(name="tiny", root=str(synth_root), self_loops=True, feature_norm="standardize"))
    n = raw.num_nodes
    assert data.graph.num_edges() == 2 * raw.graph.num_edges() + n
    src, dst = data.graph.edges(order="srcdst")
    loops = src[src == dst]
    assert torch.equal(torch.sort(loops).values, torch.arange(n))  # exactly one per node
    feat = data.graph.ndata["feat"]
    assert feat.mean(dim=0).abs().max() < 1e-4 and (feat.std(dim=0) - 1).abs().max() < 1e-4
    assert torch.equal(data.graph.ndata["label"], raw.graph.ndata["label"])


def test_interrupted_rewrite_keeps_the_old_dataset(tmp_path, monkeypatch):
    import largegraph.data.ogb_writer as ogb_writer

    write_synthetic_node_dataset(tmp_path, "keep", SMALL, raw_format="csv")
    before = load_ogb_node_dataset("keep", tmp_path)
    written = []

    def fail_on_third(path, write, durable=True):
        if len(written) == 2:
            raise OSError("disk full")
        written.append(path)
        return real(path, write, durable)

    real = ogb_writer.write_synced
    monkeypatch.setattr(ogb_writer, "write_synced", fail_on_third)
    with pytest.raises(OSError, match="disk full"):
        write_synthetic_node_dataset(tmp_path, "keep", dataclasses.replace(SMALL, seed=9), raw_format="csv")
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]  # no staging directory left behind
    after = load_ogb_node_dataset("keep", tmp_path)
    assert torch.equal(after.graph.edges()[0], before.graph.edges()[0])
    assert torch.equal(after.graph.ndata["feat"], before.graph.ndata["feat"])


def test_rewriting_a_dataset_leaves_only_the_new_one(tmp_path):
    write_synthetic_node_dataset(tmp_path, "again", SMALL, raw_format="csv")
    write_synthetic_node_dataset(tmp_path, "again", dataclasses.replace(SMALL, seed=9), raw_format="csv")
    assert [p.name for p in tmp_path.iterdir()] == ["again"]  # the replaced copy is removed
