"""The one in-memory shape every dataset loader returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import dgl
import torch

from largegraph.data.dataset_format import SPLITS  # re-exported: the node task imports it from here
from largegraph.data.sparse import SparseFeatures
from largegraph.core.errors import DatasetError

__all__ = ["SPLITS", "GraphData", "Storage", "check_split"]


@dataclass(frozen=True)
class Storage:
    """How a dataset's arrays are held once opened.

    Attributes:
        features: ``memory`` (read into RAM) or ``mmap`` (mapped from the processed cache).
        cache: the processed-cache folder the dataset was opened from, or None (built in memory).
    """

    features: str = "memory"
    cache: str | None = None


@dataclass
class GraphData:
    """A homogeneous graph with its node data and the node split.

    Features and labels live only in ``graph.ndata['feat']`` / ``graph.ndata['label']`` (one copy,
    shared with samplers and workers); ``feat`` is float32 ``(N, D)`` and ``label`` int64 ``(N,)``
    with ``-1`` for unlabelled nodes.

    Attributes:
        name: dataset name as configured (``ogbn-arxiv``, ``synth-social``...).
        graph: the message-passing graph (reverse edges / self-loops already applied).
        num_classes: number of classes for node classification.
        split: ``train``/``valid``/``test`` -> int64 node ids.
        metric: OGB evaluation metric name (``acc``).
        evaluator_name: OGB dataset whose ``Evaluator`` scores this dataset.
        info: provenance only (source directory, generator settings...); nothing reads it to run.
        sparse_feat: features kept sparse (CSR; :mod:`largegraph.data.sparse`) instead of
            ``ndata['feat']``, or None.
        undirected: whether the graph already holds both directions of every edge (OGB added them).
        storage: how its arrays are held (features read or mapped, the cache folder).
    """

    name: str
    graph: dgl.DGLGraph
    num_classes: int
    split: dict[str, torch.Tensor]
    metric: str = "acc"
    evaluator_name: str = "ogbn-arxiv"
    info: dict = field(default_factory=dict)
    sparse_feat: SparseFeatures | None = None
    undirected: bool = False
    storage: Storage = field(default_factory=Storage)

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes()

    @property
    def feat_dim(self) -> int:
        """Feature width; 0 for a dataset without features (the model learns a node table)."""
        if self.sparse_feat is not None:
            return self.sparse_feat.num_cols
        return int(self.graph.ndata["feat"].shape[1]) if "feat" in self.graph.ndata else 0

    def node_features(self):
        """The input features: the dense ``(N, D)`` tensor, the :class:`SparseFeatures`, or None."""
        return self.sparse_feat if self.sparse_feat is not None else self.graph.ndata.get("feat")

    def describe(self) -> str:
        """One line for logs: sizes of graph, features and splits."""
        sizes = " ".join(f"{k}={len(v)}" for k, v in self.split.items())
        return (
            f"{self.name}: {self.num_nodes} nodes, {self.graph.num_edges()} edges, "
            f"{self.feat_dim}-d {'sparse ' if self.sparse_feat is not None else ''}features, "
            f"{self.num_classes} classes, split {sizes}"
        )


def check_split(name: str, split: dict[str, torch.Tensor], labels: torch.Tensor, num_classes: int) -> None:
    """Every split part non-empty, within ``[0, len(labels))``, disjoint, and labelled in range.

    Raises:
        DatasetError: one line naming dataset ``name``, the part and the first offending node.
    """
    n = len(labels)
    seen = torch.zeros(n, dtype=torch.bool)
    for part in SPLITS:
        idx = split.get(part)
        if idx is None or len(idx) == 0:
            raise DatasetError(f"{name}: the {part} split is empty; every split needs nodes")
        if idx.min() < 0 or idx.max() >= n:
            raise DatasetError(f"{name}: {part} split has node ids outside [0, {n}) "
                               f"(min {int(idx.min())}, max {int(idx.max())})")
        if seen[idx].any() or len(torch.unique(idx)) != len(idx):
            raise DatasetError(f"{name}: {part} split overlaps another split (or repeats nodes); "
                               f"splits must be disjoint")
        seen[idx] = True
        y = labels[idx]
        bad = (y < 0) | (y >= num_classes)
        if bad.any():
            node = int(idx[bad.nonzero()[0, 0]])
            raise DatasetError(f"{name}: label {int(labels[node])} of node {node} ({part} split) is out of "
                               f"range [0, {num_classes}); fix the labels or num_classes")
