"""Typed datasets: the ogbn-mag-shaped generator, OGB's heterogeneous layout read back through OGB's
loader and the processed cache bit for bit, reverse relations, and the link split of one relation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from largegraph.config import DataConfig
from largegraph.core.errors import ConfigError, DatasetError
from largegraph.data import HeteroGraphData, HeteroLinkData, load_dataset, load_link_data
from largegraph.data.hetero import reverse_name
from largegraph.data.hetero_ogb import find_typed, read_typed
from largegraph.data.synthetic_hetero import (CITES, MAG_EDGES, MAG_NODES, SynthHeteroParams, WRITES,
                                              generate_mag_like)

TINY = SynthHeteroParams(scale=0.002, seed=3)  # the mag_root fixture's graph


@pytest.fixture(scope="module")
def tiny():
    return generate_mag_like(TINY)


def test_generator_has_ogbn_mags_types_relations_and_time_split(tiny):
    assert tiny.num_nodes == {t: round(n * 0.002) for t, n in MAG_NODES.items()}
    assert set(tiny.edges) == set(MAG_EDGES)
    for relation, target in MAG_EDGES.items():
        assert len(tiny.edges[relation]) == round(target * 0.002)
    assert list(tiny.feat) == ["paper"] and tiny.feat["paper"].shape == (tiny.num_nodes["paper"], 128)
    assert tiny.num_classes == 349 and tiny.labels["paper"].max() < 349
    years = tiny.year["paper"]
    assert years.min() >= 2010 and years.max() == 2019
    assert (years[tiny.split["train"]] < 2018).all() and (years[tiny.split["valid"]] == 2018).all()
    assert (years[tiny.split["test"]] == 2019).all()
    assert sum(len(v) for v in tiny.split.values()) == tiny.num_nodes["paper"]
    # ogbn-mag's shares: 85.4 % train, 8.8 % valid, 5.7 % test
    assert abs(len(tiny.split["test"]) / tiny.num_nodes["paper"] - 0.057) < 0.01
    # heavy-tailed: the most prolific author writes many times the mean
    papers_per_author = np.bincount(tiny.edges[WRITES][:, 0])
    assert papers_per_author.max() > 8 * papers_per_author.mean()
    assert (tiny.edges[CITES][:, 0] != tiny.edges[CITES][:, 1]).all()


def test_generator_is_deterministic(tiny):
    again = generate_mag_like(TINY)
    other = generate_mag_like(SynthHeteroParams(scale=0.002, seed=4))
    for relation in MAG_EDGES:
        assert np.array_equal(tiny.edges[relation], again.edges[relation])
    assert np.array_equal(tiny.feat["paper"], again.feat["paper"])
    assert not np.array_equal(tiny.feat["paper"], other.feat["paper"])


def test_generator_refuses_a_scale_too_small_for_its_classes():
    with pytest.raises(DatasetError, match="--scale"):
        generate_mag_like(SynthHeteroParams(scale=0.0001))


def _csc_edges(graph, relation) -> tuple[torch.Tensor, torch.Tensor]:
    """A relation's edges from its CSC (node graphs from the cache hold no other format)."""
    indptr, indices, _ = graph.adj_tensors("csc", etype=relation)
    return indices, torch.repeat_interleave(torch.arange(len(indptr) - 1), torch.diff(indptr))


def _sorted_pairs(src: torch.Tensor, dst: torch.Tensor) -> np.ndarray:
    pairs = np.stack([src.numpy(), dst.numpy()], 1).astype(np.int64)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def test_ogb_layout_round_trips_through_ogbs_loader_and_the_cache_bit_for_bit(mag_root, tiny):
    source = find_typed("mag-tiny", mag_root)
    read = read_typed(source)  # OGB's DglNodePropPredDataset, is_hetero
    assert read.target == "paper" and read.num_classes == 349
    for relation, pairs in tiny.edges.items():
        src, dst = read.graph.edges(etype=relation, order="eid")
        assert np.array_equal(np.stack([src.numpy(), dst.numpy()], 1), pairs)
    assert torch.equal(read.graph.nodes["paper"].data["feat"], torch.from_numpy(tiny.feat["paper"]))
    assert torch.equal(read.graph.nodes["paper"].data["label"], torch.from_numpy(tiny.labels["paper"]))
    assert torch.equal(read.graph.nodes["paper"].data["year"], torch.from_numpy(tiny.year["paper"]))
    assert all(np.array_equal(read.split[p].numpy(), tiny.split[p]) for p in tiny.split)
    cfg = DataConfig(name="mag-tiny", root=str(mag_root), add_reverse_edges="false")
    for _ in range(2):  # the load that builds the cache, then one that maps it
        data = load_dataset(cfg)
        assert isinstance(data, HeteroGraphData) and data.target == "paper" and data.info["cache"]
        assert set(data.graph.canonical_etypes) == set(tiny.edges)
        for relation, pairs in tiny.edges.items():
            got = _sorted_pairs(*_csc_edges(data.graph, relation))
            assert np.array_equal(got, pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))])
        assert torch.equal(data.graph.nodes["paper"].data["feat"], torch.from_numpy(tiny.feat["paper"]))
        assert torch.equal(data.graph.nodes["paper"].data["label"], torch.from_numpy(tiny.labels["paper"]))
        assert torch.equal(data.graph.nodes["paper"].data["year"], torch.from_numpy(tiny.year["paper"]))
        assert all(torch.equal(data.split[p], torch.from_numpy(tiny.split[p])) for p in tiny.split)
        assert data.feat_dims == {"author": 0, "field_of_study": 0, "institution": 0, "paper": 128}
        assert data.graph.formats()["created"] == ["csc"]


def test_reverse_relations_are_added_as_asked(mag_root, tiny):
    data = load_dataset(DataConfig(name="mag-tiny", root=str(mag_root)))
    assert len(data.graph.canonical_etypes) == 2 * len(tiny.edges)
    for relation, pairs in tiny.edges.items():
        src, dst = _csc_edges(data.graph, reverse_name(relation))
        assert np.array_equal(_sorted_pairs(dst, src), pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))])


def test_link_split_of_one_relation_is_stable_and_keeps_held_out_edges_out_of_the_graph(mag_root):
    cfg = DataConfig(name="mag-tiny", root=str(mag_root), relation="author:writes:paper")
    first, second = load_link_data(cfg), load_link_data(cfg.model_copy(update={"relation": "writes"}))
    assert isinstance(first, HeteroLinkData) and first.target == WRITES
    for part in first.split:
        for key, value in first.split[part].items():
            assert torch.equal(value, second.split[part][key])
    train = first.split["train"]
    src, dst = first.graph.edges(etype=WRITES)
    assert np.array_equal(_sorted_pairs(src, dst), _sorted_pairs(train["source_node"], train["target_node"]))
    rev_src, rev_dst = first.graph.edges(etype=reverse_name(WRITES))
    assert np.array_equal(_sorted_pairs(rev_dst, rev_src), _sorted_pairs(src, dst))
    in_graph = set(zip(src.tolist(), dst.tolist()))
    for part in ("valid", "test"):
        held = first.split[part]
        assert not in_graph & set(zip(held["source_node"].tolist(), held["target_node"].tolist()))
        neg = held["target_node_neg"]
        assert neg.shape == (len(held["source_node"]), 100) and int(neg.max()) < first.graph.num_nodes("paper")


def test_bad_relation_and_settings_are_refused_in_one_line(mag_root, synth_root):
    with pytest.raises(DatasetError, match="not a relation of mag-tiny"):
        load_link_data(DataConfig(name="mag-tiny", root=str(mag_root), relation="reviews"))
    with pytest.raises(ConfigError, match="set data.relation"):
        load_link_data(DataConfig(name="mag-tiny", root=str(mag_root)))
    with pytest.raises(ConfigError, match="self_loops"):
        load_dataset(DataConfig(name="mag-tiny", root=str(mag_root), self_loops=True))
    with pytest.raises(ConfigError, match="data.relation"):
        load_link_data(DataConfig(name="tiny", root=str(synth_root), relation="writes"))


def test_ogbn_mag_is_never_downloaded(tmp_path):
    with pytest.raises(DatasetError, match="cannot download"):
        load_dataset(DataConfig(name="ogbn-mag", root=str(tmp_path)))
