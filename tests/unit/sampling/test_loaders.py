"""Sampled blocks checked against the graph they were cut from."""
from __future__ import annotations

import dgl
import pytest
import torch

from largegraph.config import DataConfig, SamplerConfig
from largegraph.data import load_dataset
from largegraph.sampling import BatchList, NodeBatchLoader, count_batches, epoch_order


@pytest.fixture(scope="module")
def graph(synth_root) -> dgl.DGLGraph:
    return load_dataset(DataConfig(name="tiny", root=str(synth_root))).graph


def loader(graph, seeds, **kw) -> NodeBatchLoader:
    cfg = SamplerConfig(**{"fanouts": [4, 3], "batch_size": 128, **kw})
    return NodeBatchLoader(graph, seeds, cfg, uses_graph=True, base_seed=5, device=torch.device("cpu"))


def test_blocks_are_subgraphs_with_capped_fanout_and_seed_outputs(graph):
    seeds = torch.arange(0, graph.num_nodes(), 3)
    src_all, dst_all = graph.edges(order="srcdst")  # a cached node graph is CSC only
    edge_set = set(zip(src_all.tolist(), dst_all.tolist()))
    covered = []
    for batch in loader(graph, seeds).epoch(0):
        assert torch.equal(batch.blocks[-1].dstdata[dgl.NID], batch.seeds)
        assert torch.equal(batch.blocks[0].srcdata[dgl.NID], batch.input_nodes)
        for block, fanout in zip(batch.blocks, [4, 3]):
            src, dst = block.edges()
            gsrc, gdst = block.srcdata[dgl.NID][src], block.dstdata[dgl.NID][dst]
            assert all(pair in edge_set for pair in zip(gsrc.tolist(), gdst.tolist()))
            # Every sampled edge is a real edge, and no node gets more in-edges than its fanout
            # (nor more than it has in the graph).
            in_deg = block.in_degrees()
            full = graph.in_degrees(block.dstdata[dgl.NID])
            assert (in_deg <= fanout).all() and torch.equal(in_deg, torch.minimum(full, torch.tensor(fanout)))
        # Consecutive blocks chain: a layer's inputs are the next layer's outputs plus neighbours.
        assert torch.equal(batch.blocks[0].dstdata[dgl.NID], batch.blocks[1].srcdata[dgl.NID])
        assert torch.equal(batch.x, graph.ndata["feat"][batch.input_nodes])
        assert torch.equal(batch.y, graph.ndata["label"][batch.seeds])
        covered.append(batch.seeds)
    assert torch.equal(torch.sort(torch.cat(covered)).values, seeds)


def test_full_neighbor_layers_take_every_in_edge(graph):
    seeds = torch.arange(50)
    batch = next(loader(graph, seeds, fanouts=[-1, 2], batch_size=50).epoch(0))
    assert torch.equal(batch.blocks[0].in_degrees(), graph.in_degrees(batch.blocks[0].dstdata[dgl.NID]))


def test_epoch_order_depends_only_on_seed_and_epoch():
    seeds = torch.arange(1000)
    a, b = epoch_order(seeds, 1, 3, True), epoch_order(seeds, 1, 3, True)
    assert torch.equal(a, b) and not torch.equal(a, epoch_order(seeds, 1, 4, True))
    assert torch.equal(torch.sort(a).values, seeds)
    assert torch.equal(epoch_order(seeds, 1, 3, False), seeds)


def test_resume_mid_epoch_yields_the_remaining_batches_unchanged(graph):
    seeds = torch.arange(graph.num_nodes())
    full = [(b.seeds, b.input_nodes) for b in loader(graph, seeds).epoch(2)]
    tail = [(b.seeds, b.input_nodes) for b in loader(graph, seeds).epoch(2, start=5 * 128)]
    assert len(tail) == len(full) - 5
    for (s1, i1), (s2, i2) in zip(full[5:], tail):
        assert torch.equal(s1, s2) and torch.equal(i1, i2)


def test_num_batches_honours_drop_last(graph):
    seeds = torch.arange(300)
    assert loader(graph, seeds).num_batches() == 3
    assert loader(graph, seeds, drop_last=True).num_batches() == 2
    assert len(list(loader(graph, seeds, drop_last=True).epoch(0))) == 2


def test_worker_processes_deliver_identical_batches_in_order(graph):
    seeds = torch.arange(graph.num_nodes())
    # prefetch 0: the trainer's own thread samples, as a worker's does; a prefetch thread samples on
    # another thread, whose batches are repeatable but not the same (largegraph.sampling.samplers)
    def batches(workers):
        return [(b.seeds, b.input_nodes, b.blocks[0].edges()[0])
                for b in loader(graph, seeds, num_workers=workers, prefetch=0).epoch(1)]
    inproc, two = batches(0), batches(2)
    assert len(inproc) == len(two) == loader(graph, seeds).num_batches()
    for a, b in zip(inproc, two):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("n,bs,world,drop", [(1000, 128, 2, False), (1001, 128, 3, False), (257, 128, 2, False),
                                             (1000, 100, 4, True), (7, 2, 3, False), (129, 64, 2, False)])
def test_rank_shards_are_disjoint_cover_the_order_and_have_equal_step_counts(n, bs, world, drop):
    order = torch.randperm(n)
    lists = [BatchList(order, bs, drop, rank, world) for rank in range(world)]
    assert len({len(b) for b in lists}) == 1
    assert len(lists[0]) == count_batches(n, bs, world, drop)
    taken = torch.cat([b[i] for b in lists for i in range(len(b))])
    assert len(taken) == len(set(taken.tolist()))
    covered = lists[0].end(len(lists[0]) - 1)
    assert sorted(taken.tolist()) == sorted(order[:covered].tolist())
    assert covered == (n if not drop else n // (bs * world) * bs * world)
    assert all(len(b[i]) > 0 for b in lists for i in range(len(b)))


def test_consumed_seeds_are_a_prefix_so_another_world_size_continues_the_epoch(graph):
    seeds = torch.arange(graph.num_nodes())
    two = [loader(graph, seeds) for _ in range(2)]
    for rank, ld in enumerate(two):
        ld.rank, ld.world_size = rank, 2
    first = [list(ld.epoch(1)) for ld in two]
    offset = first[0][1].offset  # after two global steps of 2 x 128 seeds
    assert offset == first[1][1].offset == 2 * 2 * 128
    done = torch.cat([b.seeds for per_rank in first for b in per_rank[:2]])
    rest = torch.cat([b.seeds for b in loader(graph, seeds).epoch(1, start=offset)])
    assert sorted(torch.cat([done, rest]).tolist()) == seeds.tolist()


def test_more_ranks_than_seeds_is_refused(graph):
    from largegraph.core.errors import ConfigError

    with pytest.raises(ConfigError, match="3 workers but only 2 training seeds"):
        NodeBatchLoader(graph, torch.arange(2), SamplerConfig(fanouts=[2]), uses_graph=True, base_seed=0,
                        device=torch.device("cpu"), world_size=3)
