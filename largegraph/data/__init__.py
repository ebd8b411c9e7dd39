"""Datasets as a job uses them: :func:`load_dataset` (node classification, a validated
:class:`GraphData`) and :func:`load_link_data` (link prediction, a :class:`LinkData`), each loaded and
then prepared for sampling by :func:`prepare` as the job's ``data`` settings ask."""
from __future__ import annotations

import torch

from largegraph.config import DataConfig
from largegraph.data.graph import GraphData
from largegraph.data.layout import SPLITS
from largegraph.data.link import LinkData, load_link_dataset
from largegraph.data.ogb import load_ogb_node_dataset
from largegraph.data.prepare import prepare
from largegraph.errors import DatasetError

__all__ = ["GraphData", "LinkData", "load_dataset", "load_link_data", "validate", "prepare"]


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


def load_dataset(cfg: DataConfig) -> GraphData:
    """Load, validate and prepare the dataset a job config names.

    Raises:
        DatasetError: with a one-line description of what is wrong and how to fix it.
    """
    data = load_ogb_node_dataset(cfg.name, cfg.root)
    validate(data)
    return prepare(data, cfg)


def load_link_data(cfg: DataConfig) -> LinkData:
    """Load and prepare the link-prediction dataset a job config names (see :func:`prepare` for
    which settings links honour).

    Raises:
        DatasetError: with a one-line description of what is wrong and how to fix it.
        ConfigError: a data setting link prediction cannot honour, saying what to set instead.
    """
    return prepare(load_link_dataset(cfg.name, cfg.root), cfg)
