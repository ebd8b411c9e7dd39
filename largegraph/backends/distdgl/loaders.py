"""Node-classification and link-prediction batches sampled from a ``DistGraph``, behind the trainer's
loader interface.

Each trainer walks its own training nodes (or edges) (its partition's share) in an order drawn from
``(seed, rank, epoch)``. ``DistNodeDataLoader`` has no length, and DDP needs every rank to take the
same number of steps, so all trainers agree on the smallest per-rank batch count when the loader is
built. ``offset`` is the number of this rank's seeds consumed (batches x batch size): a checkpoint
taken mid-epoch resumes at the same place of the same order, with the same number of trainers.
Neighbours are sampled by the graph servers, whose random streams a trainer does not control:
resume continues the run, but not bitwise as a single-machine run does.
"""
from __future__ import annotations

import warnings
from typing import Iterator

import torch
import torch.distributed as tdist

from largegraph.config import SamplerConfig
from largegraph.training.distributed import DistEnv
from largegraph.core.errors import ConfigError
from largegraph.core.rng import mix_seed
from largegraph.sampling.batches import EdgeMiniBatch, MiniBatch
from largegraph.sampling.loaders import SeedLoader
from largegraph.sampling.order import count_batches, epoch_order


class _ShareLoader(SeedLoader):
    """What both loaders share: this trainer's seeds, its epoch order and the agreed step count.

    Args:
        graph: the ``DistGraph``.
        seeds: this trainer's training nodes or edges.
        cfg: sampler settings (fanouts, batch size, shuffle, drop_last).
        base_seed: the job seed; the epoch order is drawn from it, the rank and the epoch.
        dist: this trainer's place among all trainers.
        what: ``nodes`` or ``edges``, for messages.
    """

    def __init__(self, graph, seeds: torch.Tensor, cfg: SamplerConfig, *, base_seed: int, device: torch.device,
                 dist: DistEnv, what: str):
        import dgl

        super().__init__(graph, seeds, cfg, device)
        self.seed = mix_seed(base_seed, dist.rank)
        self.features = "feat" in graph.ndata
        self.sampler = dgl.dataloading.NeighborSampler(cfg.fanouts)
        self.steps = _agreed_min(count_batches(len(seeds), cfg.batch_size, 1, cfg.drop_last), dist)
        if self.steps == 0:
            raise ConfigError(f"trainer {dist.rank} has {len(seeds)} training {what}, too few for one batch of "
                              f"{cfg.batch_size}; use a smaller sampler.batch_size or fewer trainers")

    def num_batches(self, start: int = 0) -> int:
        """Batches left in an epoch resumed ``start`` of this rank's seeds into its order."""
        return max(self.steps - -(-start // self.batch_size), 0)

    def order(self, epoch: int, start: int) -> torch.Tensor:
        """This trainer's seeds of ``epoch`` from ``start``, cut at the agreed number of steps."""
        return epoch_order(self.seeds, self.seed, epoch, self.cfg.shuffle)[start:self.steps * self.batch_size]


class DistNodeLoader(_ShareLoader):
    """This trainer's node-classification batches of an epoch, from a ``DistGraph``
    (``ndata['feat']`` and ``ndata['label']``); arguments as :class:`_ShareLoader`."""

    def __init__(self, graph, seeds: torch.Tensor, cfg: SamplerConfig, *, base_seed: int,
                 device: torch.device, dist: DistEnv):
        super().__init__(graph, seeds, cfg, base_seed=base_seed, device=device, dist=dist, what="nodes")

    def epoch(self, epoch: int, start: int = 0) -> Iterator[MiniBatch]:
        """This trainer's batches of ``epoch`` from seed ``start`` of its order."""
        import dgl

        order = self.order(epoch, start)
        if len(order) == 0:
            return
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*DistDataLoader.*")
            loader = dgl.dataloading.DistNodeDataLoader(self.graph, order, self.sampler, batch_size=self.batch_size,
                                                        shuffle=False, drop_last=False)
        offset = start
        for input_nodes, seeds, blocks in loader:
            offset += len(seeds)
            yield self._batch(input_nodes, seeds, blocks, offset)

    def _batch(self, input_nodes, seeds, blocks, offset: int) -> MiniBatch:
        g, dev = self.graph, self.device
        x = g.ndata["feat"][input_nodes].float().to(dev) if self.features else None
        y = g.ndata["label"][seeds].long().to(dev)
        return MiniBatch(input_nodes=input_nodes.to(dev), seeds=seeds.to(dev), blocks=[b.to(dev) for b in blocks],
                         x=x, y=y, offset=offset)


def _agreed_min(value: int, dist: DistEnv) -> int:
    """The smallest ``value`` over all trainers (every one calls this)."""
    if not dist.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64)
    tdist.all_reduce(t, op=tdist.ReduceOp.MIN)
    return int(t.item())


class DistEdgeLoader(_ShareLoader):
    """This trainer's link-prediction batches of an epoch, from a ``DistGraph``: its share of the
    training edges, uniform negatives, the seed edges and their reverse edges left out of message
    passing; ``offset`` counted as in :class:`DistNodeLoader`.

    Args:
        graph: the ``DistGraph`` of training edges.
        seeds: this trainer's training edge ids (one direction per undirected pair).
        num_negatives: negatives per positive.
        reverse_eids: every edge's reverse edge id, to exclude with the seed edge (None: keep them).
        exclude_self: leave the seed edges themselves out (directed graphs).
        others: as :class:`_ShareLoader`.
    """

    def __init__(self, graph, seeds: torch.Tensor, cfg: SamplerConfig, *, num_negatives: int,
                 reverse_eids: torch.Tensor | None, exclude_self: bool, base_seed: int, device: torch.device,
                 dist: DistEnv):
        import dgl

        super().__init__(graph, seeds, cfg, base_seed=base_seed, device=device, dist=dist, what="edges")
        # DGL's distributed edge loader takes these itself (its EdgeCollator), not a wrapped sampler
        self.exclude = ({"exclude": "reverse_id", "reverse_eids": reverse_eids} if reverse_eids is not None
                        else {"exclude": "self"} if exclude_self else {})
        self.negatives = dgl.dataloading.negative_sampler.Uniform(num_negatives)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[EdgeMiniBatch]:
        """This trainer's batches of ``epoch`` from seed edge ``start`` of its order."""
        import dgl

        order = self.order(epoch, start)
        if len(order) == 0:
            return
        loader = dgl.dataloading.DistEdgeDataLoader(self.graph, order, self.sampler, batch_size=self.batch_size,
                                                    shuffle=False, drop_last=False, negative_sampler=self.negatives,
                                                    **self.exclude)
        offset = start
        for input_nodes, pair_graph, neg_graph, blocks in loader:
            offset += pair_graph.num_edges()
            dev = self.device
            x = self.graph.ndata["feat"][input_nodes].float().to(dev) if self.features else None
            yield EdgeMiniBatch(input_nodes.to(dev), pair_graph.to(dev), neg_graph.to(dev),
                                [b.to(dev) for b in blocks], x, offset)
