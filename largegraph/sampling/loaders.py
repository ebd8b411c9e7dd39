"""Delivery: an epoch of batch records, resumable at any seed offset, for this rank.

:class:`NodeBatchLoader` and :class:`EdgeBatchLoader` share the epoch's order, its sharding over
ranks and DGL's DataLoader (in-process, in worker processes, or from pinned memory); what they
sample is :mod:`largegraph.sampling.samplers`' business.
"""
from __future__ import annotations

import signal
from typing import Iterator

import dgl
import torch

from largegraph.core import allocator
from largegraph.config import SamplerConfig
from largegraph.data.hot_rows import HotRows
from largegraph.data.sparse import SparseFeatures
from largegraph.core.device import dgl_has_cuda
from largegraph.core.errors import ConfigError
from largegraph.sampling.batches import EdgeMiniBatch, MiniBatch
from largegraph.sampling.order import BatchList, count_batches, epoch_order
from largegraph.sampling.prefetch import prefetched
from largegraph.sampling.samplers import (SeededEdgeSampler, SeededNegatives, SeededNeighborSampler,
                                          SeedOnlySampler, reverse_edge_ids)


def _init_worker(worker_id: int) -> None:
    # SIGTERM to the process group (orchestrator drain, Slurm preemption) must reach the trainer,
    # which checkpoints and stops; a sampler worker dying first would crash the loader instead.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    allocator.worker_init()


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; to a GPU through pinned memory, without waiting for the copy."""
    if device.type != "cuda":
        return x
    return x.pin_memory().to(device, non_blocking=True)


class RowGather:
    """Gathers feature rows on the host into a ring of reused float32 buffers, one batch at a time.

    A batch's rows stay untouched until ``slots - 1`` later batches have been gathered: with
    ``slots`` = prefetch depth + 2 that is after the batch's optimizer step (the one computing it,
    and the backward pass that reads its input, are done before the trainer takes a batch that far
    ahead). The ring holds ``slots`` buffers of the largest batch seen: memory traded for not
    allocating, zeroing and faulting in a (input nodes x width) tensor per batch.

    Args:
        feat: (N, D) features, any float dtype (float16/bfloat16 storage is widened here).
        slots: buffers in the ring.
    """

    def __init__(self, feat: torch.Tensor, slots: int):
        self.feat = feat
        self.buffers: list[torch.Tensor | None] = [None] * slots
        self.staging: list[torch.Tensor | None] = [None] * slots  # rows in the stored dtype, when not float32
        self.next = 0

    def _slot(self, store: list, rows: int, dtype: torch.dtype) -> torch.Tensor:
        buf = store[self.next]
        if buf is None or buf.shape[0] < rows:
            # a little headroom, so that slightly larger batches later do not reallocate every time
            size = (max(rows, int(rows * 1.1)), self.feat.shape[1])
            buf = torch.empty(size, dtype=dtype)
            store[self.next] = buf
        return buf[:rows]

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        rows = rows.cpu()
        out = self._slot(self.buffers, len(rows), torch.float32)
        if self.feat.dtype == torch.float32:
            torch.index_select(self.feat, 0, rows, out=out)
        else:
            out.copy_(torch.index_select(self.feat, 0, rows, out=self._slot(self.staging, len(rows), self.feat.dtype)))
        self.next = (self.next + 1) % len(self.buffers)
        return out

    def release(self) -> None:
        """Drop the ring (it is allocated again by the next batch gathered).

        Called when a pass over the loader ends: the ring is sized for a whole batch's input rows
        (at ogbn-products scale, fanouts 15,10,5: four buffers of about 270 MB), and held through the
        exact evaluation that follows an epoch it stacked on that evaluation's (N, hidden) buffers.
        Allocating it again costs a few page faults per epoch, not per batch.
        """
        self.buffers = [None] * len(self.buffers)
        self.staging = [None] * len(self.staging)
        self.next = 0


class SeedLoader:
    """What every loader of training seeds holds (here or over a ``DistGraph``): the graph it samples,
    this rank's seeds, the sampler settings and where batches are delivered."""

    def __init__(self, graph, seeds: torch.Tensor, cfg: SamplerConfig, device: torch.device):
        self.graph = graph
        self.seeds = seeds
        self.cfg = cfg
        self.batch_size = cfg.batch_size
        self.device = device


class EpochLoader(SeedLoader):
    """An epoch's seed order, sharded over ranks, delivered by DGL's DataLoader.

    What the trainer relies on: ``epoch(e, start)`` yields this rank's batch records of epoch ``e``
    from ``start`` seeds into its order, ``num_batches(start)`` counts them, ``seeds`` are the
    training seeds and ``batch_size`` is the per-rank batch size.

    Args:
        graph: the message-passing graph.
        seeds: node or edge ids to train on.
        cfg: sampler settings.
        base_seed: the job seed; see :mod:`largegraph.sampling` for the guarantee.
        device: where batches are delivered.
        rank, world_size: this process's place among data-parallel ranks (see BatchList).
    """

    def __init__(self, graph: dgl.DGLGraph, seeds: torch.Tensor, cfg: SamplerConfig, *, base_seed: int,
                 device: torch.device, rank: int = 0, world_size: int = 1):
        if len(seeds) < world_size:
            raise ConfigError(f"{world_size} workers but only {len(seeds)} training seeds; use at most "
                              f"{len(seeds)} workers (--nproc)")
        super().__init__(graph, seeds, cfg, device)
        self.base_seed = base_seed
        self.rank = rank
        self.world_size = world_size
        # On a GPU with a CUDA build of DGL, sample straight from pinned host memory (UVA) instead of
        # copying the whole graph to the device.
        self.use_uva = device.type == "cuda" and dgl_has_cuda()
        # Batches sampled by this process on the host: the prefetch thread and our own row gather
        # apply. Worker processes already sample ahead (and a thread starting them while the trainer
        # computes would fork in the middle of OpenMP's work); UVA samples and gathers on the GPU.
        self.on_host = cfg.num_workers == 0 and not self.use_uva
        self.prefetch = cfg.prefetch if self.on_host else 0

    def num_batches(self, start: int = 0) -> int:
        """Batches this rank runs in an epoch resumed ``start`` seeds into its order."""
        return count_batches(len(self.seeds) - start, self.cfg.batch_size, self.world_size, self.cfg.drop_last)

    def plan(self, epoch: int, start: int) -> BatchList:
        """The rest of epoch ``epoch``'s order from seed ``start``, cut into this rank's batches."""
        order = epoch_order(self.seeds, self.base_seed, epoch, self.cfg.shuffle)[start:]
        return BatchList(order, self.cfg.batch_size, self.cfg.drop_last, self.rank, self.world_size)

    def _dataloader(self, batches: BatchList, sampler) -> dgl.dataloading.DataLoader:
        return dgl.dataloading.DataLoader(
            self.graph, batches, sampler, device=self.device, use_uva=self.use_uva,
            batch_size=1, shuffle=False, drop_last=False, persistent_workers=False,
            num_workers=0 if self.use_uva else self.cfg.num_workers, worker_init_fn=_init_worker,
            # torch seeds every loader iterator from the global RNG unless given a generator; that
            # draw would shift dropout's random stream between a run and its mid-epoch resume.
            generator=torch.Generator(),
        )

    def sampled(self, epoch: int, start: int, sampler) -> Iterator[tuple[int, tuple]]:
        """(seeds consumed after the batch, DGL's sampler output) for the rest of the epoch."""
        batches = self.plan(epoch, start)
        if len(batches) == 0:
            return
        for i, out in enumerate(self._dataloader(batches, sampler)):
            yield start + batches.end(i), out


class NodeBatchLoader(EpochLoader):
    """Delivers an epoch of node-classification mini-batches.

    Args:
        graph: graph with ``ndata['feat']`` and ``ndata['label']``.
        uses_graph: False for encoders without message passing (MLP): no neighbour sampling.
        sparse: features kept sparse (the graph then has no ``ndata['feat']``): each batch's
            ``x`` is its input nodes' rows as a sparse CSR tensor, gathered here.
        others: as :class:`EpochLoader`.
    """

    def __init__(self, graph: dgl.DGLGraph, seeds: torch.Tensor, cfg: SamplerConfig, *,
                 uses_graph: bool, base_seed: int, device: torch.device, rank: int = 0, world_size: int = 1,
                 hot_rows: HotRows | None = None, sparse: SparseFeatures | None = None):
        super().__init__(graph, seeds, cfg, base_seed=base_seed, device=device, rank=rank, world_size=world_size)
        self.features = "feat" in graph.ndata  # none: the model looks up a learnable table by node id
        self.sparse = sparse
        self.hot_rows = hot_rows
        # Rows gathered here into reused buffers (DGL would allocate a new tensor per batch);
        # worker processes and UVA gather where they sample.
        self.gather = (RowGather(graph.ndata["feat"], self.prefetch + 2)
                       if self.features and hot_rows is None and self.on_host else None)
        if uses_graph:
            # with a hot-row cache or our own gather the rows are not gathered by DGL
            prefetch = ["feat"] if self.features and hot_rows is None and self.gather is None else None
            self.sampler = SeededNeighborSampler(cfg.fanouts, base_seed, prefetch_node_feats=prefetch,
                                                 prefetch_labels=["label"])
        else:
            self.sampler = SeedOnlySampler()

    def epoch(self, epoch: int, start: int = 0) -> Iterator[MiniBatch]:
        """Yield this rank's batches of ``epoch``, resuming ``start`` seeds into the epoch's order."""
        # Worker processes copy the sampler when the iterator starts, so this epoch reaches them.
        self.sampler.epoch = epoch
        batches = (self._batch(input_nodes, seeds, blocks, offset)
                   for offset, (input_nodes, seeds, blocks) in self.sampled(epoch, start, self.sampler))
        try:
            yield from prefetched(batches, self.prefetch)
        finally:
            if self.gather is not None:  # prefetched() has joined its thread: no gather in flight
                self.gather.release()

    def _batch(self, input_nodes, seeds, blocks, offset: int) -> MiniBatch:
        if self.sparse is not None:
            # only the batch's stored entries are read; the first layer multiplies them sparse
            x = self.sparse.rows(input_nodes.cpu()).to(self.device)
        elif self.hot_rows is not None:
            x = to_device(self.hot_rows[input_nodes.cpu()], self.device)
        elif self.gather is not None:
            x = self.gather(input_nodes)
        elif blocks:
            x = blocks[0].srcdata["feat"] if self.features else None
        else:
            x = self.graph.ndata["feat"][input_nodes.cpu()].to(self.device) if self.features else None
        y = blocks[-1].dstdata["label"] if blocks else self.graph.ndata["label"][seeds.cpu()].to(self.device)
        # float16/bfloat16 storage (data.feature_dtype) halves the bytes gathered; compute is float32
        x = x.float() if x is not None else None
        return MiniBatch(input_nodes=input_nodes, seeds=seeds, blocks=blocks, x=x, y=y, offset=offset)


class EdgeBatchLoader(EpochLoader):
    """Delivers an epoch of link-prediction batches over the training edges.

    With ``exclude_seed_edges`` a batch's own edges *and their reverse edges* are left out of its
    message passing, so the model never sees the edge it is asked to predict; validation and test
    edges are not in the graph at all.

    Two strategies, by ``cfg.full_graph``:

    * blocks: DGL's edge-prediction sampler builds per-batch blocks with ``cfg.fanouts``.
    * whole graph: for graphs small enough that every step can afford all of them (ogbl-ddi: 4,267
      nodes) each step's message passing runs over the training graph less the batch's excluded
      edges (a boolean mask over the edge ids); this is what full-neighbour blocks compute, without
      building two blocks of ~all edges per step. Pair indices are then plain node ids.

    Batch order, sharding, negatives and resume are the same in both.

    Args:
        graph: message-passing graph of training edges; for undirected data edge ``2i+1`` is the
            reverse of edge ``2i`` (OGB's layout).
        seed_eids: edge ids to train on (one direction per undirected edge).
        negatives: draws each batch's negative pairs.
        undirected: whether reverse edges exist (and are excluded with their twin).
        exclude_seed_edges: see above.
        others: as :class:`EpochLoader`.
    """

    def __init__(self, graph: dgl.DGLGraph, seed_eids: torch.Tensor, cfg: SamplerConfig, *,
                 negatives: SeededNegatives, undirected: bool, exclude_seed_edges: bool = True,
                 base_seed: int, device: torch.device, rank: int = 0, world_size: int = 1):
        super().__init__(graph, seed_eids, cfg, base_seed=base_seed, device=device, rank=rank, world_size=world_size)
        self.negatives = negatives
        self.undirected = undirected
        self.exclude_seed_edges = exclude_seed_edges
        self.features = "feat" in graph.ndata
        self.nodes = self.sampler = None
        if not cfg.full_graph:
            self.nodes = SeededNeighborSampler(
                cfg.fanouts, base_seed, prefetch_node_feats=["feat"] if self.features else None)
            self.sampler = self._block_sampler()

    def epoch(self, epoch: int, start: int = 0) -> Iterator[EdgeMiniBatch]:
        """Yield this rank's batches of ``epoch``, resuming ``start`` seeds into the epoch's order."""
        self.negatives.epoch = epoch
        if self.nodes is None:
            batches = self.plan(epoch, start)
            for i in range(len(batches)):
                yield self._whole_graph_batch(batches[i], start + batches.end(i))
            return
        self.nodes.epoch = epoch
        batches = (self._block_batch(*out, offset) for offset, out in self.sampled(epoch, start, self.sampler))
        yield from prefetched(batches, self.prefetch)

    def _block_batch(self, input_nodes, pair_graph, neg_graph, blocks, offset: int) -> EdgeMiniBatch:
        x = blocks[0].srcdata["feat"].float() if self.features else None
        return EdgeMiniBatch(input_nodes, pair_graph, neg_graph, blocks, x, offset)

    def _block_sampler(self) -> SeededEdgeSampler:
        if not self.exclude_seed_edges:
            exclude = {}
        elif self.undirected:
            exclude = {"exclude": "reverse_id", "reverse_eids": reverse_edge_ids(self.graph.num_edges())}
        else:
            exclude = {"exclude": "self"}
        return SeededEdgeSampler(self.nodes, negative_sampler=self.negatives, **exclude)

    def _whole_graph_batch(self, eids: torch.Tensor, offset: int) -> EdgeMiniBatch:
        g, n = self.graph, self.graph.num_nodes()
        visible = self._visible_graph(eids).to(self.device)
        pair_graph = dgl.graph(g.find_edges(eids), num_nodes=n)
        pair_graph.edata[dgl.EID] = eids
        neg_graph = dgl.graph(self.negatives(g, eids), num_nodes=n)
        # as in sampled batches, NID maps the pair graphs' nodes (here: all of them) to graph ids
        pair_graph.ndata[dgl.NID] = neg_graph.ndata[dgl.NID] = torch.arange(n)
        x = g.ndata["feat"].to(self.device, torch.float32) if self.features else None
        return EdgeMiniBatch(torch.arange(n, device=self.device), pair_graph.to(self.device),
                             neg_graph.to(self.device), [visible] * len(self.cfg.fanouts), x, offset)

    def _visible_graph(self, eids: torch.Tensor) -> dgl.DGLGraph:
        """The training graph less the batch's seed edges and their reverses."""
        if not self.exclude_seed_edges:
            return self.graph
        keep = torch.ones(self.graph.num_edges(), dtype=torch.bool)
        keep[eids] = False
        if self.undirected:
            keep[eids ^ 1] = False
        return dgl.edge_subgraph(self.graph, keep, relabel_nodes=False)
