"""Datasets: every loader returns a validated :class:`GraphData` ready for sampling."""
from __future__ import annotations

import dgl
import torch

from largegraph.config import DataConfig
from largegraph.data.graph import SPLITS, GraphData
from largegraph.data.ogb import load_ogb_node_dataset
from largegraph.errors import DatasetError

__all__ = ["GraphData", "load_dataset", "validate", "prepare_graph", "normalize_features"]


def validate(data: GraphData) -> None:
    """Check features, labels and split; raise DatasetError naming the first problem found."""
    feat, labels = data.graph.ndata["feat"], data.graph.ndata["label"]
    n = data.num_nodes
    if feat.ndim != 2 or feat.shape[0] != n:
        raise DatasetError(f"{data.name}: features have shape {tuple(feat.shape)}, expected ({n}, D)")
    bad_rows = (~torch.isfinite(feat)).any(dim=1).nonzero().flatten()
    if len(bad_rows):
        raise DatasetError(f"{data.name}: features of {len(bad_rows)} nodes contain NaN or inf "
                           f"(first: node {int(bad_rows[0])}); clean or impute them before training")
    seen = torch.zeros(n, dtype=torch.bool)
    for part in SPLITS:
        idx = data.split.get(part)
        if idx is None or len(idx) == 0:
            raise DatasetError(f"{data.name}: the {part} split is empty; every split needs nodes")
        if idx.min() < 0 or idx.max() >= n:
            raise DatasetError(f"{data.name}: {part} split has node ids outside [0, {n}) "
                               f"(min {int(idx.min())}, max {int(idx.max())})")
        if seen[idx].any() or len(torch.unique(idx)) != len(idx):
            raise DatasetError(f"{data.name}: {part} split overlaps another split (or repeats nodes); "
                               f"splits must be disjoint")
        seen[idx] = True
        y = labels[idx]
        bad = (y < 0) | (y >= data.num_classes)
        if bad.any():
            node = int(idx[bad.nonzero()[0, 0]])
            raise DatasetError(f"{data.name}: label {int(labels[node])} of node {node} ({part} split) is out of "
                               f"range [0, {data.num_classes}); fix the labels or num_classes")


def normalize_features(feat: torch.Tensor, kind: str) -> None:
    """In place (no second copy): ``row`` L1-normalises rows, ``standardize`` columns."""
    if kind == "row":
        feat.div_(feat.abs().sum(dim=1, keepdim=True).clamp_min(1e-12))
    elif kind == "standardize":
        feat.sub_(feat.mean(dim=0)).div_(feat.std(dim=0).clamp_min(1e-6))


def prepare_graph(data: GraphData, cfg: DataConfig) -> GraphData:
    """Apply reverse edges, self-loops and feature normalisation in place of the raw graph.

    Node data is carried over by reference, so features are never held twice.
    """
    g = data.graph
    ogb_symmetric = data.info.get("inverse_edges_added_by_ogb", False)
    add_reverse = cfg.add_reverse_edges == "true" or (cfg.add_reverse_edges == "auto" and not ogb_symmetric)
    if add_reverse and not ogb_symmetric:
        g = dgl.add_reverse_edges(g, copy_ndata=True)
    if cfg.self_loops:
        g = dgl.add_self_loop(dgl.remove_self_loop(g))
    normalize_features(g.ndata["feat"], cfg.feature_norm)
    data.graph = g
    data.info.update(reverse_edges_added=bool(add_reverse and not ogb_symmetric), self_loops=cfg.self_loops)
    return data


def load_dataset(cfg: DataConfig) -> GraphData:
    """Load, validate and prepare the dataset a job config names.

    Raises:
        DatasetError: with a one-line description of what is wrong and how to fix it.
    """
    data = load_ogb_node_dataset(cfg.name, cfg.root)
    validate(data)
    return prepare_graph(data, cfg)
