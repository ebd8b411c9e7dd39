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
from largegraph.sampling.typed import typed_fanouts


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
        self.features = self._features(graph)
        self.sampler = self._sampler(graph, cfg)
        self.steps = _agreed_min(count_batches(len(seeds), cfg.batch_size, 1, cfg.drop_last), dist)
        if self.steps == 0:
            raise ConfigError(f"trainer {dist.rank} has {len(seeds)} training {what}, too few for one batch of "
                              f"{cfg.batch_size}; use a smaller sampler.batch_size or fewer trainers")

    def _features(self, graph):
        """Whether the nodes have features (``ndata['feat']``)."""
        return "feat" in graph.ndata

    def _sampler(self, graph, cfg: SamplerConfig):
        """Samples a batch's blocks."""
        import dgl

        return dgl.dataloading.NeighborSampler(cfg.fanouts)

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
            loader = dgl.dataloading.DistNodeDataLoader(self.graph, self._typed(order), self.sampler,
                                                        batch_size=self.batch_size, shuffle=False, drop_last=False)
        offset = start
        for input_nodes, seeds, blocks in loader:
            seeds = self._untyped(seeds)
            offset += len(seeds)
            yield self._batch(input_nodes, seeds, blocks, offset)

    def _typed(self, ids: torch.Tensor):
        """Seed ids as DGL's loader takes them."""
        return ids

    def _untyped(self, seeds) -> torch.Tensor:
        """A batch's seed ids as DGL's loader gives them, as this trainer's seed ids."""
        return seeds

    def _batch(self, input_nodes, seeds, blocks, offset: int) -> MiniBatch:
        g, dev = self.graph, self.device
        x = g.ndata["feat"][input_nodes].float().to(dev) if self.features else None
        y = g.ndata["label"][seeds].long().to(dev)
        return MiniBatch(input_nodes=input_nodes.to(dev), seeds=seeds.to(dev), blocks=[b.to(dev) for b in blocks],
                         x=x, y=y, offset=offset)


class DistTypedNodeLoader(DistNodeLoader):
    """This trainer's node-classification batches of ``target`` nodes over typed blocks, from a typed
    ``DistGraph`` (features per type, labels on ``target``), with per-relation fanouts
    (``sampler.relation_fanouts``) as a single-machine typed run samples; arguments as :class:`_ShareLoader`."""

    def __init__(self, graph, target: str, seeds: torch.Tensor, cfg: SamplerConfig, *, base_seed: int,
                 device: torch.device, dist: DistEnv):
        self.target = target
        super().__init__(graph, seeds, cfg, base_seed=base_seed, device=device, dist=dist)

    def _features(self, graph) -> dict:
        """Each featured type's features (a featureless type's rows are the model's tables)."""
        return {t: graph.nodes[t].data["feat"] for t in graph.ntypes if "feat" in graph.nodes[t].data}

    def _sampler(self, graph, cfg: SamplerConfig):
        return every_relation_sampler(typed_fanouts(graph, cfg))

    def _typed(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.target: ids}

    def _untyped(self, seeds: dict[str, torch.Tensor]) -> torch.Tensor:
        return seeds[self.target]

    def _batch(self, input_nodes, seeds, blocks, offset: int) -> MiniBatch:
        dev = self.device
        y = self.graph.nodes[self.target].data["label"][seeds].long().to(dev)
        return MiniBatch(input_nodes={t: ids.to(dev) for t, ids in input_nodes.items()}, seeds=seeds.to(dev),
                         blocks=[b.to(dev) for b in blocks], x=typed_rows(self.features, input_nodes, dev), y=y,
                         offset=offset)


def every_relation_sampler(fanouts: list):
    """DGL's neighbour sampler whose typed blocks hold every relation of the ``DistGraph``, those
    without sampled edges too: DGL's distributed sampling leaves them out, but a typed layer runs every
    relation each step (so that every weight takes part in each data-parallel step), as it does on one
    machine, where blocks keep every relation."""
    import dgl

    class EveryRelationSampler(dgl.dataloading.NeighborSampler):
        def sample_blocks(self, g, seed_nodes, exclude_eids=None):
            return super().sample_blocks(_EveryRelation(g), seed_nodes, exclude_eids)

    return EveryRelationSampler(fanouts)


class _EveryRelation:
    """A ``DistGraph`` whose sampled frontiers hold every relation (see :func:`every_relation_sampler`)."""

    def __init__(self, graph):
        self._graph = graph

    def __getattr__(self, name: str):
        return getattr(self._graph, name)

    def sample_neighbors(self, *args, **kwargs):
        import dgl

        frontier = self._graph.sample_neighbors(*args, **kwargs)
        relations = self._graph.canonical_etypes
        if len(frontier.canonical_etypes) == len(relations):
            return frontier
        none = torch.empty(0, dtype=frontier.idtype)
        edges = {r: frontier.edges(etype=r) if r in frontier.canonical_etypes else (none, none) for r in relations}
        full = dgl.heterograph(edges, {t: frontier.num_nodes(t) for t in frontier.ntypes}, idtype=frontier.idtype)
        for r in relations:
            data = frontier.edges[r].data if r in frontier.canonical_etypes else {}
            full.edges[r].data[dgl.EID] = data[dgl.EID] if dgl.EID in data else torch.empty(0, dtype=torch.int64)
        return full


def typed_rows(feats: dict, input_nodes: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The input nodes' feature rows of every featured type, float32 on ``device``, pulled from the
    servers (a type without input nodes gets zero rows without asking them)."""
    return {t: (feats[t][ids] if len(ids) else torch.empty(0, feats[t].shape[1])).float().to(device)
            for t, ids in input_nodes.items() if t in feats}


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
