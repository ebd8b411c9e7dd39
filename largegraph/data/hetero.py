"""The in-memory shape of a typed (heterogeneous) dataset: node types and relations, as DGL holds them.

Typed datasets are peers of :class:`~largegraph.data.GraphData` and :class:`~largegraph.data.LinkData`
behind the same :class:`~largegraph.training.protocols.Dataset` seam: loaders, models and tasks that
handle types read these classes; nothing else in a run asks which kind of dataset it holds.

Relations are DGL's canonical edge types ``(source type, relation, destination type)``; a reverse
relation added on request is named ``rev_<relation>`` (as DGL's and GraphStorm's examples name them).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import dgl
import torch

from largegraph.data.graph import Storage

__all__ = ["HeteroGraphData", "HeteroLinkData", "Relation", "reverse_name"]

Relation = tuple[str, str, str]  # (source type, relation, destination type)
REVERSE_PREFIX = "rev_"


def reverse_name(relation: Relation) -> Relation:
    """The reverse relation of ``relation``: ``(dst, rev_<rel>, src)``."""
    src, rel, dst = relation
    return dst, f"{REVERSE_PREFIX}{rel}", src


def _feat_dims(graph: dgl.DGLHeteroGraph) -> dict[str, int]:
    """Feature width per node type; 0 for a featureless type (the model learns a table for it)."""
    return {t: int(graph.nodes[t].data["feat"].shape[1]) if "feat" in graph.nodes[t].data else 0
            for t in graph.ntypes}


@dataclass
class HeteroGraphData:
    """A typed graph with node classification on one node type (``target``).

    Features live only in ``graph.nodes[t].data['feat']`` (float32 ``(N_t, D_t)``, absent for a
    featureless type) and labels in ``graph.nodes[target].data['label']`` (int64, ``-1`` unlabelled):
    one copy, shared with samplers and workers, as for :class:`~largegraph.data.GraphData`.

    Attributes:
        name: dataset name as configured (``ogbn-mag``, ``mag-like``...).
        graph: the message-passing graph, reverse relations already added as the job asked.
        target: the node type whose nodes are classified (ogbn-mag: ``paper``).
        num_classes: classes of the target type.
        split: ``train``/``valid``/``test`` -> int64 ids of ``target`` nodes.
        metric: OGB evaluation metric name (``acc``).
        evaluator_name: OGB dataset whose ``Evaluator`` scores this dataset.
        info: provenance only; nothing reads it to run.
        undirected: whether every relation already holds its reverse (never so for OGB's typed data).
        storage: how its arrays are held (features read or mapped, the cache folder).
    """

    name: str
    graph: dgl.DGLHeteroGraph
    target: str
    num_classes: int
    split: dict[str, torch.Tensor]
    metric: str = "acc"
    evaluator_name: str = "ogbn-mag"
    info: dict = field(default_factory=dict)
    undirected: bool = False
    storage: Storage = field(default_factory=Storage)
    sparse_feat: None = None  # typed datasets keep dense features (or none) per type

    @property
    def num_nodes(self) -> int:
        """Nodes of the target type (the ids predictions and the split use)."""
        return self.graph.num_nodes(self.target)

    @property
    def feat_dims(self) -> dict[str, int]:
        return _feat_dims(self.graph)

    @property
    def feat_dim(self) -> int:
        """Feature width of the target type."""
        return self.feat_dims[self.target]

    def describe(self) -> str:
        """One line for logs: types, relations, sizes and splits."""
        types = " ".join(f"{t}={self.graph.num_nodes(t)}" for t in self.graph.ntypes)
        sizes = " ".join(f"{k}={len(v)}" for k, v in self.split.items())
        return (f"{self.name}: nodes {types}; {len(self.graph.canonical_etypes)} relations, "
                f"{self.graph.num_edges()} edges; {self.target} classes={self.num_classes} {sizes}")


@dataclass
class HeteroLinkData:
    """A typed graph with link prediction on one relation (``target``).

    Attributes:
        name: dataset name.
        graph: message-passing graph holding the **training** edges of ``target`` only (and their
            reverse relation when added), every other relation whole.
        target: the relation whose edges are predicted.
        split: ``train``/``valid``/``test`` -> ``{'source_node', 'target_node'[, 'target_node_neg']}``
            int64 tensors, ids of the source and destination types (OGB's ``source_target`` style).
        metric: ``mrr`` or ``hits@K``.
        evaluator_name: OGB dataset whose ``ogb.linkproppred.Evaluator`` scores this dataset.
        info, undirected, storage: as for :class:`HeteroGraphData`.
    """

    name: str
    graph: dgl.DGLHeteroGraph
    target: Relation
    split: dict[str, dict[str, torch.Tensor]]
    metric: str = "mrr"
    evaluator_name: str = "ogbl-citation2"
    info: dict = field(default_factory=dict)
    undirected: bool = False
    storage: Storage = field(default_factory=Storage)
    sparse_feat: None = None
    num_classes: int = 0

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes()

    @property
    def feat_dims(self) -> dict[str, int]:
        return _feat_dims(self.graph)

    @property
    def feat_dim(self) -> int:
        """Feature width of the target relation's source type."""
        return self.feat_dims[self.target[0]]

    def describe(self) -> str:
        types = " ".join(f"{t}={self.graph.num_nodes(t)}" for t in self.graph.ntypes)
        sizes = " ".join(f"{k}={len(v['source_node'])}" for k, v in self.split.items())
        return (f"{self.name}: nodes {types}; {len(self.graph.canonical_etypes)} relations; "
                f"predicting {':'.join(self.target)} {sizes}")
