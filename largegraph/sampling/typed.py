"""Typed (heterogeneous) sampling: per-relation fanouts, seeds of one node type or edges of one relation.

The loaders are :class:`~largegraph.sampling.loaders.EpochLoader`s like the homogeneous ones: the same
epoch order, sharding over ranks, worker processes and per-batch seeding, so batch ``b`` of epoch
``e`` is a function of ``(seed, e, b)`` here too. What differs is what is sampled (typed blocks,
``{type: ids}`` input nodes) and what a batch's rows are (a dict of per-type features).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import dgl
import torch

from largegraph.config import SamplerConfig
from largegraph.core.errors import ConfigError
from largegraph.core.rng import mix_seed
from largegraph.data.hetero import Relation, reverse_name
from largegraph.sampling.batches import EdgeMiniBatch, MiniBatch
from largegraph.sampling.loaders import EpochLoader, to_device
from largegraph.sampling.prefetch import prefetched
from largegraph.sampling.samplers import SeededNeighborSampler, _one_batch


def find_relation(graph: dgl.DGLHeteroGraph, name: str, key: str) -> Relation:
    """The canonical relation ``name`` means (``src:rel:dst`` or a relation name used once).

    Raises:
        ConfigError: no such relation, or a bare name several relations share (``key``: the config key).
    """
    parts = tuple(name.split(":"))
    found = [r for r in graph.canonical_etypes if r == parts or (len(parts) == 1 and r[1] == name)]
    if len(found) != 1:
        known = ", ".join(":".join(r) for r in graph.canonical_etypes)
        why = "is ambiguous" if found else "is not a relation of this dataset"
        raise ConfigError(f"{key}: {name!r} {why}; relations: {known}")
    return found[0]


def typed_fanouts(graph: dgl.DGLHeteroGraph, cfg: SamplerConfig) -> list[dict[Relation, int]]:
    """One ``{relation: fanout}`` per layer: ``sampler.relation_fanouts`` where named, else ``sampler.fanouts``."""
    named = {find_relation(graph, name, f"sampler.relation_fanouts.{name}"): f
             for name, f in cfg.relation_fanouts.items()}
    return [{r: named[r][i] if r in named else fanout for r in graph.canonical_etypes}
            for i, fanout in enumerate(cfg.fanouts)]


class TypedNeighborSampler(SeededNeighborSampler):
    """Seeded neighbour sampling of typed blocks; a batch's items are ids of ``target`` (node type)."""

    def __init__(self, fanouts: list[dict[Relation, int]], base_seed: int, target: str | None = None):
        super().__init__(fanouts, base_seed)
        self.target = target

    def sample(self, g, seed_nodes, exclude_eids=None):
        seeds = _one_batch(seed_nodes)
        return super().sample(g, seeds if isinstance(seeds, dict) else {self.target: seeds}, exclude_eids)


def _features(graph: dgl.DGLHeteroGraph) -> dict[str, torch.Tensor]:
    return {t: graph.nodes[t].data["feat"] for t in graph.ntypes if "feat" in graph.nodes[t].data}


def gather_rows(feats: dict[str, torch.Tensor], input_nodes: dict[str, torch.Tensor],
                device: torch.device) -> dict[str, torch.Tensor]:
    """The input nodes' feature rows of every type that has features, float32 on ``device``."""
    return {t: to_device(feats[t][ids.cpu()].float(), device) for t, ids in input_nodes.items() if t in feats}


class TypedNodeBatchLoader(EpochLoader):
    """Node-classification batches of ``target`` nodes over typed blocks.

    Args:
        graph: the typed graph (features per type, labels on ``target``).
        target: the node type classified.
        seeds: ``target`` ids to train on.
        others: as :class:`~largegraph.sampling.loaders.EpochLoader`.
    """

    def __init__(self, graph: dgl.DGLHeteroGraph, target: str, seeds: torch.Tensor, cfg: SamplerConfig, *,
                 base_seed: int, device: torch.device, rank: int = 0, world_size: int = 1):
        super().__init__(graph, seeds, cfg, base_seed=base_seed, device=device, rank=rank, world_size=world_size)
        self.target = target
        self.feats = _features(graph)
        self.labels = graph.nodes[target].data["label"]
        self.sampler = TypedNeighborSampler(typed_fanouts(graph, cfg), base_seed, target)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[MiniBatch]:
        """This rank's batches of ``epoch`` from seed ``start`` of its order on."""
        self.sampler.epoch = epoch  # worker processes copy the sampler when the iterator starts
        batches = (self._batch(*out, offset) for offset, out in self.sampled(epoch, start, self.sampler))
        yield from prefetched(batches, self.prefetch)

    def _batch(self, input_nodes, seeds, blocks, offset: int) -> MiniBatch:
        seeds = seeds[self.target]
        return MiniBatch(input_nodes=input_nodes, seeds=seeds, blocks=blocks,
                         x=gather_rows(self.feats, input_nodes, self.device),
                         y=to_device(self.labels[seeds.cpu()], self.device), offset=offset)


@dataclass
class TypedNegatives:
    """``k`` negatives per positive of ``relation``: its source, a random node of its destination type,
    drawn from (seed, epoch, batch) like :class:`~largegraph.sampling.samplers.SeededNegatives`.
    With ``true_negatives`` pairs that are edges of the relation (or self-pairs) are redrawn."""

    REDRAW_ROUNDS = 8

    relation: Relation
    k: int
    base_seed: int
    true_negatives: bool = True
    epoch: int = 0  # set by the loader each epoch

    def __call__(self, g, eids: dict) -> dict[Relation, tuple[torch.Tensor, torch.Tensor]]:
        ids = eids[self.relation]
        gen = torch.Generator().manual_seed(mix_seed(self.base_seed, self.epoch, int(ids[0]), 0x4E6))
        n = g.num_nodes(self.relation[2])
        src = g.find_edges(ids, etype=self.relation)[0].repeat_interleave(self.k)
        dst = torch.randint(0, n, (len(src),), generator=gen)
        todo = torch.arange(len(src)) if self.true_negatives else torch.arange(0)
        for _ in range(self.REDRAW_ROUNDS if len(todo) else 0):
            s, d = src[todo], dst[todo]
            bad = g.has_edges_between(s, d, etype=self.relation)
            if self.relation[0] == self.relation[2]:
                bad |= s == d
            todo = todo[bad]
            if len(todo) == 0:
                break
            dst[todo] = torch.randint(0, n, (len(todo),), generator=gen)
        return {self.relation: (src, dst)}


class TypedEdgeSampler(dgl.dataloading.EdgePredictionSampler):
    """DGL's edge-prediction sampler over whole batches of ``relation``'s edge ids."""

    def __init__(self, nodes, relation: Relation, **kwargs):
        super().__init__(nodes, **kwargs)
        self.relation = relation

    def sample(self, g, seed_edges):
        return super().sample(g, {self.relation: _one_batch(seed_edges)})


class TypedEdgeBatchLoader(EpochLoader):
    """Link-prediction batches of ``relation``'s training edges over typed blocks.

    With ``exclude_seed_edges`` a batch's own edges and, when the graph holds the reverse relation
    (``rev_<rel>``, edge ``i`` the reverse of edge ``i``), their reverse edges are left out of its message
    passing. A batch's ``pair_graph``/``neg_graph`` hold only ``relation`` (its source and destination
    types), so their ``edges()`` index the blocks' output nodes of those types.

    Args:
        graph: typed message-passing graph (``relation``'s training edges only).
        relation: the relation predicted.
        seed_eids: ``relation`` edge ids to train on.
        negatives: draws each batch's negatives.
        others: as :class:`~largegraph.sampling.loaders.EpochLoader`.
    """

    def __init__(self, graph: dgl.DGLHeteroGraph, relation: Relation, seed_eids: torch.Tensor, cfg: SamplerConfig, *,
                 negatives: TypedNegatives, exclude_seed_edges: bool = True, base_seed: int,
                 device: torch.device, rank: int = 0, world_size: int = 1):
        super().__init__(graph, seed_eids, cfg, base_seed=base_seed, device=device, rank=rank, world_size=world_size)
        self.relation = relation
        self.negatives = negatives
        self.feats = _features(graph)
        self.nodes = TypedNeighborSampler(typed_fanouts(graph, cfg), base_seed)
        reverse = reverse_name(relation)
        if not exclude_seed_edges:
            exclude = {}
        elif reverse in graph.canonical_etypes:
            exclude = {"exclude": "reverse_types", "reverse_etypes": {relation: reverse, reverse: relation}}
        else:
            exclude = {"exclude": "self"}
        self.sampler = TypedEdgeSampler(self.nodes, relation, negative_sampler=negatives, **exclude)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[EdgeMiniBatch]:
        """This rank's batches of ``epoch`` from seed ``start`` of its order on."""
        self.negatives.epoch = self.nodes.epoch = epoch
        batches = (self._batch(*out, offset) for offset, out in self.sampled(epoch, start, self.sampler))
        yield from prefetched(batches, self.prefetch)

    def _batch(self, input_nodes, pair_graph, neg_graph, blocks, offset: int) -> EdgeMiniBatch:
        pos = dgl.edge_type_subgraph(pair_graph, [self.relation])
        neg = dgl.edge_type_subgraph(neg_graph, [self.relation])
        return EdgeMiniBatch(input_nodes, pos, neg, blocks, gather_rows(self.feats, input_nodes, self.device), offset)
