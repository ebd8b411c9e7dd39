"""What is sampled for a batch: neighbours (DGL's samplers, re-seeded per batch) and negatives."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

import dgl
import torch
from dgl.utils import set_num_threads

from largegraph.core.rng import mix_seed


def _one_batch(seed_nodes):
    # torch's fetcher wraps each dataset item in a list; our items are already whole batches.
    return seed_nodes[0] if isinstance(seed_nodes, list) else seed_nodes


def first_id(seeds) -> int:
    """The first id of a batch's seeds (a tensor, or per type: the first of the first non-empty type in
    name order): what, with (seed, epoch), picks the batch's random stream."""
    if isinstance(seeds, dict):
        seeds = next(v for _, v in sorted(seeds.items()) if len(v))
    return int(seeds[0])


class SeededNeighborSampler(dgl.dataloading.NeighborSampler):
    """DGL's NeighborSampler whose randomness per batch depends only on (seed, epoch, batch)."""

    def __init__(self, fanouts: list, base_seed: int, **kwargs):
        super().__init__(fanouts, **kwargs)
        self.base_seed = base_seed
        self.epoch = 0

    def sample(self, g, seed_nodes, exclude_eids=None):
        return super().sample(g, _one_batch(seed_nodes), exclude_eids)

    def sample_blocks(self, g, seed_nodes, exclude_eids=None):
        # DGL's multi-threaded CPU sampling (fused sampling, to_block's hash map) is not repeatable
        # across runs even with a fixed seed; one thread is. Worker processes already run DGL on one
        # thread; in-process sampling drops to one thread for the call only.
        seed = mix_seed(self.base_seed, self.epoch, first_id(seed_nodes)) % 2_147_483_647  # a C int
        return on_sampling_thread(lambda: self._sample_seeded(g, seed_nodes, exclude_eids, seed))

    def _sample_seeded(self, g, seed_nodes, exclude_eids, seed: int):
        threads = torch.get_num_threads()
        set_num_threads(1)
        try:
            dgl.seed(seed)
            return super().sample_blocks(g, seed_nodes, exclude_eids=exclude_eids)
        finally:
            set_num_threads(threads)


_sampling_thread: tuple[int, ThreadPoolExecutor] | None = None  # (pid, executor) of this process


def on_sampling_thread(fn):
    """``fn()`` on the main thread when called there, else on this process's one sampling thread.

    dgl.seed does not make a batch the same on every thread: the same seeded batch sampled by two
    threads of one process differs (measured: each new thread gave other blocks; one thread gave the
    same blocks every time, in every process). The main thread (the trainer without prefetching,
    every sampler worker process) samples as it always did. Any other caller (the prefetch thread of
    :mod:`largegraph.sampling.prefetch`, a new one every epoch) hands its batches to one long-lived
    thread per process, so that a batch does not depend on which prefetch thread asked for it: the
    blocks are then the same in every run and every resume, though not those the main thread draws.
    """
    global _sampling_thread
    if threading.current_thread() is threading.main_thread():
        return fn()
    if _sampling_thread is None or _sampling_thread[0] != os.getpid():  # a forked worker starts its own
        _sampling_thread = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="largegraph-sample"))
    return _sampling_thread[1].submit(fn).result()


class SeedOnlySampler(dgl.dataloading.Sampler):
    """For encoders without message passing (MLP): no blocks, the seeds are the inputs."""

    epoch = 0

    def sample(self, g, seed_nodes):
        seed_nodes = _one_batch(seed_nodes)
        return seed_nodes, seed_nodes, []


@dataclass
class SeededNegatives:
    """Negative pairs for a batch of seed edges, drawn from (seed, epoch, batch) like the neighbors.

    ``uniform``: ``k`` random destinations for each positive's source (DGL's ``Uniform``).
    ``global_uniform``: ``k`` random node pairs per positive, from anywhere in the graph.
    With ``true_negatives``, pairs that are edges of the message-passing graph, and self-pairs,
    are redrawn (as DGL's ``GlobalUniform`` and PyG's ``negative_sampling`` do). On dense graphs
    this matters: on ogbl-ddi one uniform pair in eight is a training edge, and those false
    negatives crowd the high-degree pairs that Hits@K's top-ranked negatives come from.
    """

    # Each round keeps a pair with probability about the graph's density, so a few rounds leave
    # almost none; a source adjacent to every node can never get a true negative and stays as drawn.
    REDRAW_ROUNDS: ClassVar[int] = 8

    k: int  # negatives per positive
    base_seed: int
    global_uniform: bool = False
    true_negatives: bool = False
    epoch: int = 0  # set by the loader each epoch

    def __call__(self, g, eids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(mix_seed(self.base_seed, self.epoch, int(eids[0]), 0x4E6))
        n, count = g.num_nodes(), len(eids) * self.k
        dst = torch.randint(0, n, (count,), generator=gen)
        if self.global_uniform:
            src = torch.randint(0, n, (count,), generator=gen)
        else:
            src = g.find_edges(eids)[0].repeat_interleave(self.k)
        if self.true_negatives:
            self._redraw_edges(g, src, dst, gen)
        return src, dst

    def _redraw_edges(self, g, src: torch.Tensor, dst: torch.Tensor, gen: torch.Generator) -> None:
        n = g.num_nodes()
        todo = torch.arange(len(src))  # only redrawn pairs need checking again
        for _ in range(self.REDRAW_ROUNDS):
            s, d = src[todo], dst[todo]
            todo = todo[(s == d) | g.has_edges_between(s, d)]
            if len(todo) == 0:
                return
            dst[todo] = torch.randint(0, n, (len(todo),), generator=gen)
            if self.global_uniform:
                src[todo] = torch.randint(0, n, (len(todo),), generator=gen)


class SeededEdgeSampler(dgl.dataloading.EdgePredictionSampler):
    """DGL's edge-prediction sampler over our whole-batch items (see :class:`BatchList`)."""

    def sample(self, g, seed_edges):
        return super().sample(g, _one_batch(seed_edges))


def reverse_edge_ids(num_edges: int) -> torch.Tensor:
    """The reverse of every edge in OGB's undirected layout, where edge ``2i+1`` is ``2i`` reversed."""
    return torch.arange(num_edges) ^ 1
