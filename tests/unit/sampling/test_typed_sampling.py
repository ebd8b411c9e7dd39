"""Typed sampling: per-relation fanouts, seeded batches that resume exactly, seed edges excluded."""
from __future__ import annotations

import dgl
import pytest
import torch
from typed_graphs import mag_toy

from largegraph.config import SamplerConfig
from largegraph.core.errors import ConfigError
from largegraph.sampling.typed import (TypedEdgeBatchLoader, TypedNegatives, TypedNodeBatchLoader, find_relation,
                                       typed_fanouts)

CPU = torch.device("cpu")
WRITES = ("author", "writes", "paper")


def node_loader(g, **kw) -> TypedNodeBatchLoader:
    cfg = SamplerConfig(**{"fanouts": [4, 3], "batch_size": 64, **kw})
    return TypedNodeBatchLoader(g, "paper", torch.arange(200), cfg, base_seed=3, device=CPU)


def test_blocks_respect_fanouts_per_relation_and_hold_real_edges():
    g = mag_toy()
    named = {"writes": [1, 2], "paper:cites:paper": [2, -1]}
    for batch in node_loader(g, relation_fanouts=named).epoch(0):
        assert torch.equal(batch.blocks[-1].dstnodes["paper"].data[dgl.NID], batch.seeds)
        assert torch.equal(batch.y, g.nodes["paper"].data["label"][batch.seeds])
        assert batch.x["paper"].shape == (len(batch.input_nodes["paper"]), 16) and set(batch.x) == {"paper"}
        for layer, block in enumerate(batch.blocks):
            for rel in block.canonical_etypes:
                fanout = typed_fanouts(g, SamplerConfig(fanouts=[4, 3], relation_fanouts=named))[layer][rel]
                dst_ids = block.dstnodes[rel[2]].data[dgl.NID]
                full = g.in_degrees(dst_ids, etype=rel)
                cap = full if fanout == -1 else torch.minimum(full, torch.tensor(fanout))
                assert torch.equal(block.in_degrees(etype=rel), cap), (layer, rel)
                src, dst = block.edges(etype=rel)
                gsrc, gdst = block.srcnodes[rel[0]].data[dgl.NID][src], dst_ids[dst]
                assert g.has_edges_between(gsrc, gdst, etype=rel).all()


def test_unknown_or_ambiguous_relation_is_one_line_config_error():
    g = mag_toy()
    with pytest.raises(ConfigError, match="'wrote' is not a relation of this dataset") as err:
        typed_fanouts(g, SamplerConfig(fanouts=[2], relation_fanouts={"wrote": [1]}))
    assert "\n" not in str(err.value)
    g2 = dgl.heterograph({("a", "r", "b"): ([0], [0]), ("b", "r", "a"): ([0], [0])})
    with pytest.raises(ConfigError, match="ambiguous"):
        find_relation(g2, "r", "sampler.relation_fanouts.r")
    assert find_relation(g2, "b:r:a", "k") == ("b", "r", "a")


def _signature(batches) -> list:
    return [(b.offset, b.seeds.tolist(), {t: v.tolist() for t, v in b.input_nodes.items()},
             [blk.num_edges() for blk in b.blocks]) for b in batches]


def test_batch_is_a_function_of_seed_epoch_and_position_so_resume_is_exact():
    g = mag_toy()
    full = _signature(node_loader(g).epoch(2))
    assert full == _signature(node_loader(g).epoch(2))
    assert full != _signature(node_loader(g).epoch(3))
    start = full[0][0]  # resume after the first batch
    assert _signature(node_loader(g).epoch(2, start)) == full[1:]
    # prefetch 0: the trainer's own thread samples, as a worker's does (a prefetch thread's blocks differ)
    in_process = _signature(node_loader(g, prefetch=0).epoch(2))
    assert _signature(node_loader(g, num_workers=2).epoch(2)) == in_process


def edge_loader(g, k=3, **kw) -> TypedEdgeBatchLoader:
    cfg = SamplerConfig(**{"fanouts": [-1, -1], "batch_size": 100, **kw})
    return TypedEdgeBatchLoader(g, WRITES, torch.arange(g.num_edges(WRITES)), cfg, negatives=TypedNegatives(WRITES, k, 7),
                                base_seed=7, device=CPU)


def test_link_batches_exclude_their_edges_and_reverse_edges_and_draw_negatives_of_the_destination_type():
    g = mag_toy()
    rev = ("paper", "rev_writes", "author")
    for batch in edge_loader(g).epoch(0):
        eids = batch.seed_ids
        assert batch.pair_graph.canonical_etypes == [WRITES] and batch.size == len(eids)
        for block in batch.blocks:
            for rel in (WRITES, rev):
                seen = block.edges[rel].data[dgl.EID]
                assert not torch.isin(seen, eids).any(), rel  # full fanout: only the exclusion removes them
        src, dst = batch.neg_graph.edges()
        assert len(src) == 3 * len(eids)
        gsrc = batch.pair_graph.srcnodes["author"].data[dgl.NID][src]
        gdst = batch.pair_graph.dstnodes["paper"].data[dgl.NID][dst]
        assert not g.has_edges_between(gsrc, gdst, etype=WRITES).any()
        psrc, _ = batch.pair_graph.edges()
        assert torch.equal(gsrc, batch.pair_graph.srcnodes["author"].data[dgl.NID][psrc].repeat_interleave(3))


def test_link_batches_resume_exactly():
    g = mag_toy()
    sig = [(b.offset, b.seed_ids.tolist(), b.neg_graph.edges()[1].tolist()) for b in edge_loader(g).epoch(1)]
    again = [(b.offset, b.seed_ids.tolist(), b.neg_graph.edges()[1].tolist()) for b in edge_loader(g).epoch(1, sig[0][0])]
    assert again == sig[1:]
