"""Node mini-batches: seed nodes -> (input nodes, blocks, input features, seed labels).

*What* is sampled (DGL's NeighborSampler with per-layer fanouts) is kept apart from *how* batches
are delivered (DGL's DataLoader, in-process or in worker processes), and the trainer only sees
:class:`MiniBatch` records from :meth:`NodeBatchLoader.epoch`. A loader over a DistGraph can
replace this one without touching the trainer.

Reproducibility: the seed order of epoch ``e`` is a permutation drawn from ``(seed, e)``, and DGL's
sampling RNG is re-seeded before every batch from ``(seed, e, first seed node of the batch)``. Batch
``b`` of epoch ``e`` is therefore the same whether or not the run was interrupted, and whichever
worker process samples it, and whatever the number of workers: sampling runs on one OpenMP thread,
because DGL's multi-threaded CPU sampler is not repeatable for a fixed seed.
"""
from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Iterator

import dgl
import torch
from dgl.utils import set_num_threads

from largegraph.config import SamplerConfig
from largegraph.device import dgl_has_cuda
from largegraph.errors import ConfigError

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: spreads nearby integers far apart
_MASK = (1 << 63) - 1


def mix_seed(*parts: int) -> int:
    """Deterministic 63-bit seed from integers (Python's hash() is salted per process)."""
    h = 0
    for part in parts:
        h = ((h ^ (int(part) & _MASK)) * _MIX + 0x632BE59BD9B4E019) & _MASK
        h ^= h >> 29
    return h


@dataclass
class MiniBatch:
    """One training step's data, already on the target device."""

    input_nodes: torch.Tensor
    seeds: torch.Tensor
    blocks: list
    x: torch.Tensor
    y: torch.Tensor
    offset: int = 0  # seeds of the epoch's order consumed (by all ranks) once this batch is done

    @property
    def size(self) -> int:
        return len(self.seeds)

    @property
    def seed_ids(self) -> torch.Tensor:
        return self.seeds


def count_batches(num_seeds: int, batch_size: int, world_size: int = 1, drop_last: bool = False) -> int:
    """How many batches each of ``world_size`` ranks runs over ``num_seeds`` seeds (see BatchList)."""
    step = batch_size * world_size
    if drop_last:
        return num_seeds // step
    count = -(-num_seeds // step)
    # A last global batch too small to give every rank a seed is folded into the one before it.
    if count > 1 and num_seeds - (count - 1) * step < world_size:
        count -= 1
    return count


class BatchList(torch.utils.data.Dataset):
    """An epoch's seed order cut into batches, as a map-style dataset of whole batches.

    DGL's own tensor dataset hands each worker a contiguous range of batches, and torch then
    interleaves the workers, so batches would arrive in a different order with 0 and N workers.
    A map-style dataset is delivered in index order however many workers sample it.

    Data parallelism: the order is cut into *global* batches of ``batch_size * world_size`` seeds
    and rank ``r`` trains on the r-th of ``world_size`` equal slices of each. The ranks' shards are
    therefore disjoint and together cover the order, every rank runs the same number of steps
    (DDP needs that), and after ``k`` global batches exactly a prefix of the order is consumed,
    whatever the world size: that is what lets a run resume with another number of workers.
    DGL's ``use_ddp`` pads each rank's shard with repeated seeds and fixes which seeds a rank gets
    for the whole epoch, so neither property would hold with it.
    """

    def __init__(self, order: torch.Tensor, batch_size: int, drop_last: bool, rank: int = 0, world_size: int = 1):
        self.order = order
        self.step = batch_size * world_size
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.device = order.device  # DGL's DataLoader asks a custom dataset where its indices live
        self.length = count_batches(len(order), batch_size, world_size, drop_last)

    def __len__(self) -> int:
        return self.length

    def end(self, i: int) -> int:
        """How many seeds of the order are consumed once global batch ``i`` is done."""
        if i == self.length - 1 and not self.drop_last:
            return len(self.order)
        return (i + 1) * self.step

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < self.length:
            raise IndexError(i)  # ends plain iteration, which DGL uses to inspect datasets
        chunk = self.order[i * self.step:self.end(i)]
        piece = torch.tensor_split(chunk, self.world_size)[self.rank]
        # Only when a run resumes with more ranks than seeds left in the epoch: a rank with nothing
        # to do repeats the batch's last seed rather than stalling its peers in DDP.
        return piece if len(piece) else chunk[-1:]


def _ignore_sigterm(worker_id: int) -> None:
    # SIGTERM to the process group (orchestrator drain, Slurm preemption) must reach the trainer,
    # which checkpoints and stops; a sampler worker dying first would crash the loader instead.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _one_batch(seed_nodes):
    # torch's fetcher wraps each dataset item in a list; our items are already whole batches.
    return seed_nodes[0] if isinstance(seed_nodes, list) else seed_nodes


class SeededNeighborSampler(dgl.dataloading.NeighborSampler):
    """DGL's NeighborSampler whose randomness per batch depends only on (seed, epoch, batch)."""

    def __init__(self, fanouts: list[int], base_seed: int, **kwargs):
        super().__init__(fanouts, **kwargs)
        self.base_seed = base_seed
        self.epoch = 0

    def sample(self, g, seed_nodes, exclude_eids=None):
        return super().sample(g, _one_batch(seed_nodes), exclude_eids)

    def sample_blocks(self, g, seed_nodes, exclude_eids=None):
        # DGL's multi-threaded CPU sampling (fused sampling, to_block's hash map) is not repeatable
        # across runs even with a fixed seed; one thread is. Worker processes already run DGL on one
        # thread; in-process sampling drops to one thread for the call only.
        threads = torch.get_num_threads()
        set_num_threads(1)
        try:
            dgl.seed(mix_seed(self.base_seed, self.epoch, int(seed_nodes[0])) % 2_147_483_647)  # a C int
            return super().sample_blocks(g, seed_nodes, exclude_eids=exclude_eids)
        finally:
            set_num_threads(threads)


class SeedOnlySampler(dgl.dataloading.Sampler):
    """For encoders without message passing (MLP): no blocks, the seeds are the inputs."""

    epoch = 0

    def sample(self, g, seed_nodes):
        seed_nodes = _one_batch(seed_nodes)
        return seed_nodes, seed_nodes, []


def epoch_order(seeds: torch.Tensor, base_seed: int, epoch: int, shuffle: bool) -> torch.Tensor:
    """The seed order of one epoch: a function of (base_seed, epoch) only."""
    if not shuffle:
        return seeds
    gen = torch.Generator().manual_seed(mix_seed(base_seed, epoch, 0x5EED))
    return seeds[torch.randperm(len(seeds), generator=gen)]


class _EpochLoader:
    """What node and edge loaders share: the epoch's order, its sharding over ranks, and DGL's
    DataLoader delivering the batches (in-process, in worker processes, or from pinned memory)."""

    def __init__(self, graph: dgl.DGLGraph, seeds: torch.Tensor, cfg: SamplerConfig, *, base_seed: int,
                 device: torch.device, rank: int = 0, world_size: int = 1):
        if len(seeds) < world_size:
            raise ConfigError(f"{world_size} workers but only {len(seeds)} training seeds; use at most "
                              f"{len(seeds)} workers (--nproc)")
        self.graph = graph
        self.seeds = seeds
        self.cfg = cfg
        self.base_seed = base_seed
        self.device = device
        self.rank = rank
        self.world_size = world_size
        # On a GPU with a CUDA build of DGL, sample straight from pinned host memory (UVA) instead of
        # copying the whole graph to the device.
        self.use_uva = device.type == "cuda" and dgl_has_cuda()

    def num_batches(self, start: int = 0) -> int:
        """Batches this rank runs in an epoch resumed ``start`` seeds into its order."""
        return count_batches(len(self.seeds) - start, self.cfg.batch_size, self.world_size, self.cfg.drop_last)

    def _plan(self, epoch: int, start: int) -> BatchList:
        order = epoch_order(self.seeds, self.base_seed, epoch, self.cfg.shuffle)[start:]
        return BatchList(order, self.cfg.batch_size, self.cfg.drop_last, self.rank, self.world_size)

    def _dataloader(self, batches: BatchList, sampler) -> dgl.dataloading.DataLoader:
        return dgl.dataloading.DataLoader(
            self.graph, batches, sampler, device=self.device, use_uva=self.use_uva,
            batch_size=1, shuffle=False, drop_last=False, persistent_workers=False,
            num_workers=0 if self.use_uva else self.cfg.num_workers, worker_init_fn=_ignore_sigterm,
            # torch seeds every loader iterator from the global RNG unless given a generator; that
            # draw would shift dropout's random stream between a run and its mid-epoch resume.
            generator=torch.Generator(),
        )

    def _run(self, epoch: int, start: int, sampler) -> Iterator[tuple[int, tuple]]:
        """(seeds consumed after the batch, DGL's sampler output) for the rest of the epoch."""
        batches = self._plan(epoch, start)
        if len(batches) == 0:
            return
        for i, out in enumerate(self._dataloader(batches, sampler)):
            yield start + batches.end(i), out


class NodeBatchLoader(_EpochLoader):
    """Delivers an epoch of node-classification mini-batches.

    Args:
        graph: graph with ``ndata['feat']`` and ``ndata['label']``.
        seeds: the node ids to train on.
        cfg: sampler settings (fanouts, batch size, workers...).
        uses_graph: False for MLP encoders (no neighbor sampling).
        base_seed: the job seed; see the module docstring for the guarantee.
        device: where blocks and features are delivered.
        rank, world_size: this process's place among data-parallel ranks (see BatchList).
    """

    def __init__(self, graph: dgl.DGLGraph, seeds: torch.Tensor, cfg: SamplerConfig, *,
                 uses_graph: bool, base_seed: int, device: torch.device, rank: int = 0, world_size: int = 1):
        super().__init__(graph, seeds, cfg, base_seed=base_seed, device=device, rank=rank, world_size=world_size)
        if uses_graph:
            self.sampler = SeededNeighborSampler(
                cfg.fanouts, base_seed, prefetch_node_feats=["feat"], prefetch_labels=["label"])
        else:
            self.sampler = SeedOnlySampler()

    def epoch(self, epoch: int, start: int = 0) -> Iterator[MiniBatch]:
        """Yield this rank's batches of ``epoch``, resuming ``start`` seeds into the epoch's order."""
        # Worker processes copy the sampler when the iterator starts, so this epoch reaches them.
        self.sampler.epoch = epoch
        for offset, (input_nodes, seeds, blocks) in self._run(epoch, start, self.sampler):
            yield self._batch(input_nodes, seeds, blocks, offset)

    def _batch(self, input_nodes, seeds, blocks, offset: int) -> MiniBatch:
        if blocks:
            x, y = blocks[0].srcdata["feat"], blocks[-1].dstdata["label"]
        else:
            x = self.graph.ndata["feat"][input_nodes.cpu()].to(self.device)
            y = self.graph.ndata["label"][seeds.cpu()].to(self.device)
        return MiniBatch(input_nodes=input_nodes, seeds=seeds, blocks=blocks, x=x, y=y, offset=offset)


# --- link prediction ---------------------------------------------------------------------------------
@dataclass
class EdgeMiniBatch:
    """One link-prediction step: positive and negative pairs over the blocks' output nodes."""

    input_nodes: torch.Tensor
    pair_graph: dgl.DGLGraph
    neg_graph: dgl.DGLGraph
    blocks: list
    x: torch.Tensor | None  # prefetched features of input_nodes; None for featureless graphs
    offset: int = 0  # seeds of the epoch's order consumed (by all ranks) once this batch is done

    @property
    def size(self) -> int:
        return self.pair_graph.num_edges()

    @property
    def seed_ids(self) -> torch.Tensor:
        """The training edges this batch predicts."""
        return self.pair_graph.edata[dgl.EID]


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
    REDRAW_ROUNDS = 8

    def __init__(self, k: int, base_seed: int, global_uniform: bool = False, true_negatives: bool = False):
        self.k = k
        self.base_seed = base_seed
        self.global_uniform = global_uniform
        self.true_negatives = true_negatives
        self.epoch = 0

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


class _EdgeSampler(dgl.dataloading.EdgePredictionSampler):
    def sample(self, g, seed_edges):
        return super().sample(g, _one_batch(seed_edges))


class EdgeBatchLoader(_EpochLoader):
    """Delivers an epoch of link-prediction batches over the training edges.

    The seed edges' own edges *and their reverse edges* are excluded from the sampled
    neighbourhoods, so the model never sees the edge it is asked to predict; validation and test
    edges are not in the graph at all.

    Args:
        graph: message-passing graph of training edges; for undirected data edge ``2i+1`` is the
            reverse of edge ``2i`` (OGB's layout).
        seed_eids: edge ids to train on (one direction per undirected edge).
        cfg: sampler settings.
        num_negatives: negatives per positive.
        global_uniform: negatives as random pairs instead of random destinations.
        true_negatives: redraw negatives that are edges of ``graph`` (see SeededNegatives).
        undirected: whether reverse edges exist (and must be excluded with their twin).
        base_seed: the job seed.
        device: where batches are delivered.
        rank, world_size: this process's place among data-parallel ranks (see BatchList).
    """

    def __init__(self, graph: dgl.DGLGraph, seed_eids: torch.Tensor, cfg: SamplerConfig, *,
                 num_negatives: int, global_uniform: bool, undirected: bool, base_seed: int,
                 true_negatives: bool = True, exclude_seed_edges: bool = True,
                 device: torch.device, rank: int = 0, world_size: int = 1):
        super().__init__(graph, seed_eids, cfg, base_seed=base_seed, device=device, rank=rank, world_size=world_size)
        feats = ["feat"] if "feat" in graph.ndata else None
        self.nodes = SeededNeighborSampler(cfg.fanouts, base_seed, prefetch_node_feats=feats)
        self.negatives = SeededNegatives(num_negatives, base_seed, global_uniform, true_negatives)
        if not exclude_seed_edges:
            exclude = {}
        elif undirected:
            reverse = torch.arange(graph.num_edges()) ^ 1  # 2i <-> 2i+1
            exclude = {"exclude": "reverse_id", "reverse_eids": reverse}
        else:
            exclude = {"exclude": "self"}
        self.sampler = _EdgeSampler(self.nodes, negative_sampler=self.negatives, **exclude)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[EdgeMiniBatch]:
        """Yield this rank's batches of ``epoch``, resuming ``start`` seeds into the epoch's order."""
        self.nodes.epoch = self.negatives.epoch = epoch
        for offset, (input_nodes, pair_graph, neg_graph, blocks) in self._run(epoch, start, self.sampler):
            x = blocks[0].srcdata["feat"] if "feat" in self.graph.ndata else None
            yield EdgeMiniBatch(input_nodes, pair_graph, neg_graph, blocks, x, offset)


class FullGraphEdgeLoader(_EpochLoader):
    """Link-prediction batches whose message passing runs over the whole graph (``sampler.full_graph``).

    For graphs small enough that every step can afford all of them (ogbl-ddi: 4,267 nodes), this is
    what full-neighbour blocks compute, without building two blocks of ~all edges per step: each
    step's graph is the training graph minus the batch's seed edges and their reverses (a boolean
    mask over the edge ids, so the batch still never sees the edges it predicts), and pair indices
    are plain node ids. Batch order, sharding, negatives and resume follow :class:`EdgeBatchLoader`.

    Args: as :class:`EdgeBatchLoader`, less ``cfg.fanouts`` (every neighbour is used).
    """

    def __init__(self, graph: dgl.DGLGraph, seed_eids: torch.Tensor, cfg: SamplerConfig, *,
                 num_negatives: int, global_uniform: bool, undirected: bool, base_seed: int,
                 true_negatives: bool = True, exclude_seed_edges: bool = True,
                 device: torch.device, rank: int = 0, world_size: int = 1):
        super().__init__(graph, seed_eids, cfg, base_seed=base_seed, device=device, rank=rank, world_size=world_size)
        self.negatives = SeededNegatives(num_negatives, base_seed, global_uniform, true_negatives)
        self.undirected = undirected
        self.exclude_seed_edges = exclude_seed_edges
        self.num_layers = len(cfg.fanouts)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[EdgeMiniBatch]:
        """Yield this rank's batches of ``epoch``, resuming ``start`` seeds into the epoch's order."""
        self.negatives.epoch = epoch
        batches = self._plan(epoch, start)
        for i in range(len(batches)):
            yield self._batch(batches[i], start + batches.end(i))

    def _batch(self, eids: torch.Tensor, offset: int) -> EdgeMiniBatch:
        g, n = self.graph, self.graph.num_nodes()
        visible = self._visible_graph(eids).to(self.device)
        pair_graph = dgl.graph(g.find_edges(eids), num_nodes=n)
        pair_graph.edata[dgl.EID] = eids
        neg_graph = dgl.graph(self.negatives(g, eids), num_nodes=n)
        # as in sampled batches, NID maps the pair graphs' nodes (here: all of them) to graph ids
        pair_graph.ndata[dgl.NID] = neg_graph.ndata[dgl.NID] = torch.arange(n)
        x = g.ndata["feat"].to(self.device) if "feat" in g.ndata else None
        return EdgeMiniBatch(torch.arange(n, device=self.device), pair_graph.to(self.device),
                             neg_graph.to(self.device), [visible] * self.num_layers, x, offset)

    def _visible_graph(self, eids: torch.Tensor) -> dgl.DGLGraph:
        """The training graph less the batch's seed edges and their reverses."""
        if not self.exclude_seed_edges:
            return self.graph
        keep = torch.ones(self.graph.num_edges(), dtype=torch.bool)
        keep[eids] = False
        if self.undirected:
            keep[eids ^ 1] = False
        return dgl.edge_subgraph(self.graph, keep, relabel_nodes=False)
