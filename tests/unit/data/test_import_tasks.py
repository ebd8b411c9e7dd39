"""Importing for every task: featureless and structural node datasets, link datasets split by ratio or
time in both OGB split styles (loaded back through OGB's loaders); the CLI's one-line refusals are
tests/e2e/test_data_cli.py's."""
from __future__ import annotations

import json

import numpy as np
import pytest

from largegraph.data import validate
from largegraph.data.node_import import import_node_dataset
from largegraph.data.link_import import import_link_dataset
from largegraph.data.link import load_link_dataset
from largegraph.data.ogb import load_ogb_node_dataset
from largegraph.data.structural import WALKS, structural_features


def test_node_import_without_features_loads_featureless_and_records_it(tmp_path, ring):
    directory = import_node_dataset(name="ring", root=tmp_path / "r", edges=ring["edges"], labels=ring["labels"],
                                    split_ratios=(0.5, 0.25, 0.25))
    data = load_ogb_node_dataset("ring", tmp_path / "r")
    validate(data)
    assert "feat" not in data.graph.ndata and data.feat_dim == 0 and data.num_nodes == 40
    assert json.loads((directory / "largegraph.json").read_text())["info"]["node_input"] == {"kind": "embedding"}


@pytest.mark.parametrize("kind, width", [("degree", 1), ("rw", 5), ("lap", 5)])
def test_structural_features_are_stored_as_features_and_recorded(tmp_path, ring, kind, width):
    directory = import_node_dataset(name="ring", root=tmp_path / "r", edges=ring["edges"], labels=ring["labels"],
                                    structural=kind, pe_dim=4)
    data = load_ogb_node_dataset("ring", tmp_path / "r")
    assert data.graph.ndata["feat"].shape == (40, width)
    record = json.loads((directory / "largegraph.json").read_text())["info"]["node_input"]
    assert record["kind"] == "structural" and record["structural"] == kind


def test_structural_features_match_their_definitions():
    # A 4-cycle plus an isolated node: degrees 2,2,2,2,0.
    edges = np.array([[0, 1], [1, 2], [2, 3], [3, 0]])
    deg = structural_features(edges, 5, "degree")
    np.testing.assert_allclose(deg[:, 0], np.log1p([2, 2, 2, 2, 0]), rtol=1e-6)
    rw = structural_features(edges, 5, "rw", pe_dim=2, seed=1)
    # On a 4-cycle a walk is never home after 1 step and home after 2 steps with probability 1/2.
    assert np.all(rw[:4, 1] == 0)
    assert np.all(np.abs(rw[:4, 2] - 0.5) < 4 / np.sqrt(WALKS))
    assert np.all(rw[4, 1:] == 1)  # an isolated node's walkers stay home
    lap = structural_features(np.array([[i, i + 1] for i in range(9)]), 10, "lap", pe_dim=2)
    assert lap.shape == (10, 3) and np.isfinite(lap).all()
    fiedler = lap[:, 1]  # on a path: antisymmetric about the middle, one sign change
    np.testing.assert_allclose(fiedler, -fiedler[::-1], atol=1e-4)
    assert np.count_nonzero(np.diff(np.sign(fiedler))) == 1


@pytest.mark.parametrize("style, metric, neg_key", [("edge", "hits@50", "edge_neg"),
                                                    ("source_target", "mrr", "target_node_neg")])
def test_link_import_loads_through_ogb_in_both_split_styles(tmp_path, ring, style, metric, neg_key):
    import_link_dataset(name="ring-links", root=tmp_path / "r", edges=ring["edges"], split_style=style, num_neg=7,
                        seed=5)
    data = load_link_dataset("ring-links", tmp_path / "r")
    assert data.metric == metric and data.split_style == style and data.num_nodes == 40
    assert data.graph.num_edges() == 2 * 48  # the 48 train edges, each with its reverse
    assert all(neg_key in data.split[part] for part in ("valid", "test"))
    if style == "source_target":
        assert data.split["test"]["target_node_neg"].shape == (6, 7)
    assert not any(data.info["heldout_edges_also_in_train"].values())


def test_link_import_by_timestamp_puts_the_newest_edges_in_test(tmp_path, ring):
    directory = import_link_dataset(name="timed", root=tmp_path / "r", edges=ring["edges"], time_col="ts",
                                    split_ratios=(0.5, 0.25, 0.25))
    info = json.loads((directory / "largegraph.json").read_text())["info"]
    assert info["split"]["valid_from"] == 30 and info["split"]["test_from"] == 45
    data = load_link_dataset("timed", tmp_path / "r")
    id_of = {f"v{i}": i for i in range(40)}  # ids sort as strings: v0, v1, v10, ...
    order = sorted(id_of)
    test = {tuple(sorted((order[a], order[b]))) for a, b in data.split["test"]["edge"].tolist()}
    rows = [line.split(",") for line in ring["edges"].read_text().splitlines()[1:]]
    newest = {tuple(sorted((a, b))) for a, b, t in rows if int(t) >= 45}
    assert test == newest
