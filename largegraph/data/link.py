"""Link-prediction datasets through OGB's own DGL loader (``DglLinkPropPredDataset``), for official
``ogbl-*`` names and for datasets that largegraph wrote in OGB's linkproppred layout.

Read with the same helpers as node datasets (``largegraph.data.ogb``): every file OGB would download
or ask about is checked first, stdin is closed and stdout redirected while OGB runs, and first loads
are serialised by a lock on the dataset directory.

The message-passing graph holds the **training edges only**. What OGB's DGL loader returns for an
undirected dataset (``add_inverse_edge`` True in its meta, e.g. ogbl-ddi/collab/ppa) is
``raw/edge.csv.gz`` with every edge followed by its reverse: for ogbl-ddi 4,267 nodes and 2,135,822
directed edges = 2 x the 1,067,911 train-split edges, interleaved ``(u, v), (v, u), ...`` in train
order, no node data. The graph here is rebuilt from the train split in exactly that order (so it
equals OGB's graph whenever ``raw/edge.csv.gz`` is the train split, which ``info['ogb_graph_is_train']``
records) and carries OGB's node features; valid and test edges can never reach it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import ClassVar
from pathlib import Path

import dgl
import numpy as np
import torch

from largegraph.data.dataset_format import (
    EDGE, FLOAT_SPLIT_KEYS, LINK_METRIC_EVALUATORS, SOURCE_NODE, SPLITS, TARGET_NODE, TRAIN, check_link_metric,
    check_link_split, heldout_in_train, link_split_keys, negatives, num_positives, positive_pairs, split_style_of,
)
from largegraph.data.graph import Storage
from largegraph.data.ogb import read_with_ogb, resolve_dataset
from largegraph.core.errors import DatasetError


@dataclass
class LinkData:
    """A link-prediction dataset: message-passing graph of training edges plus OGB's edge split.

    Attributes:
        name: dataset name (``ogbl-ddi``, ``synth-links``...).
        graph: message-passing graph of the training edges only (both directions for undirected
            data, edge ``2i+1`` the reverse of edge ``2i``); ``ndata['feat']`` float32 when the
            dataset has node features (ogbl-ddi has none).
        num_nodes: number of nodes.
        split: ``train``/``valid``/``test`` -> dict of int64 tensors as OGB's ``get_edge_split()``
            returns them: ``edge`` ``(E, 2)`` [+ ``edge_neg``] or ``source_node``/``target_node``
            [+ ``target_node_neg`` ``(E, K)``].
        split_style: ``edge`` or ``source_target``.
        metric: OGB's eval metric (``hits@20``, ``hits@50``, ``mrr``...).
        evaluator_name: OGB dataset whose ``ogb.linkproppred.Evaluator`` scores this dataset.
        info: provenance only (directory, official, leak counts...); nothing reads it to run.
        undirected: whether edge ``2i+1`` is the reverse of edge ``2i`` (one training edge per pair).
        storage: how its arrays are held (features read or mapped, the cache folder).
    """

    # link datasets keep dense features (or none) and have no classes
    sparse_feat: ClassVar[None] = None
    num_classes: ClassVar[int] = 0

    name: str
    graph: dgl.DGLGraph
    num_nodes: int
    split: dict[str, dict[str, torch.Tensor]]
    split_style: str
    metric: str
    evaluator_name: str
    info: dict = field(default_factory=dict)
    undirected: bool = True
    storage: Storage = field(default_factory=Storage)

    @property
    def feat_dim(self) -> int:
        return int(self.graph.ndata["feat"].shape[1]) if "feat" in self.graph.ndata else 0

    def describe(self) -> str:
        """One line for logs: sizes of graph and splits."""
        parts = []
        for part in SPLITS:
            d = self.split[part]
            neg = negatives(d, self.split_style)
            parts.append(f"{part}={num_positives(d, self.split_style)}"
                         + ("" if neg is None else f"(+{tuple(neg.shape)} neg)"))
        return (f"{self.name}: {self.num_nodes} nodes, {self.graph.num_edges()} message-passing edges, "
                f"{self.feat_dim}-d features, {self.metric}, split {' '.join(parts)}")


def _to_int64_split(split: dict) -> dict[str, dict[str, torch.Tensor]]:
    out = {}
    for part in SPLITS:
        out[part] = {}
        for key, value in split[part].items():
            t = torch.as_tensor(np.asarray(value))
            if t.is_floating_point() and key in FLOAT_SPLIT_KEYS:
                out[part][key] = t  # ogbl-collab's edge weights / years: kept as they are
                continue
            if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
                raise DatasetError(f"split[{part!r}][{key!r}] has dtype {t.dtype}; node ids must be integers")
            out[part][key] = t.to(torch.int64)
    return out


def _train_graph(train_pairs: np.ndarray, num_nodes: int, add_reverse: bool) -> dgl.DGLGraph:
    src = torch.from_numpy(train_pairs[:, 0].copy())
    dst = torch.from_numpy(train_pairs[:, 1].copy())
    if add_reverse:
        # OGB's order: each edge directly followed by its reverse.
        src, dst = torch.stack([src, dst], 1).reshape(-1), torch.stack([dst, src], 1).reshape(-1)
    return dgl.graph((src, dst), num_nodes=num_nodes)


def _split_style(name: str, raw_split: dict, directory: Path) -> str:
    """The style of OGB's split (raises DatasetError unless it has all parts and training edges)."""
    if not all(part in raw_split for part in SPLITS):
        raise DatasetError(f"{name}: OGB's split has parts {sorted(raw_split)}, expected {list(SPLITS)}")
    train = raw_split[TRAIN]
    split_style = split_style_of(train)
    if split_style is None:
        raise DatasetError(f"{name}: train split has keys {sorted(train)}; expected {EDGE!r} or "
                           f"{SOURCE_NODE!r}/{TARGET_NODE!r}")
    first_key = link_split_keys(split_style, TRAIN)[0]
    if np.asarray(train[first_key]).size == 0:
        raise DatasetError(f"{name}: the train split has no edges ({directory}); link prediction needs training edges")
    return split_style


def load_link_dataset(name: str, root: str | os.PathLike) -> LinkData:
    """Load a link-prediction dataset through OGB's ``DglLinkPropPredDataset``, as stored (no
    feature normalisation: ``largegraph.data.prepare`` applies the job's data settings).

    Args:
        name: an official OGB name (``ogbl-ddi``) or a dataset largegraph wrote under ``root``.
        root: the directory holding dataset folders (``<root>/ogbl_ddi/...``).

    Returns:
        LinkData whose graph holds the training edges only (reverse edges once for undirected data).

    Raises:
        DatasetError: unknown name, missing files (the message names the expected directory),
            out-of-range or negative node ids, empty training edges, unknown metric.
    """
    root = Path(root).expanduser()
    directory, meta, official, own_meta = resolve_dataset(name, root, "link")
    if meta["is hetero"] == "True" or meta["task type"] != "link prediction":
        raise DatasetError(f"{name} is a {'heterogeneous ' if meta['is hetero'] == 'True' else ''}"
                           f"{meta['task type']} dataset; largegraph does homogeneous link prediction")
    metric = meta["eval metric"]
    check_link_metric(metric, name)
    dataset, raw_split = read_with_ogb("link", name, directory, meta, official)
    ogb_graph = dataset[0]
    num_nodes = int(ogb_graph.num_nodes())
    split_style = _split_style(name, raw_split, directory)
    check_link_split(raw_split, num_nodes, split_style, metric, where=f"{name} split")
    split = _to_int64_split(raw_split)

    undirected = meta["add_inverse_edge"] == "True"
    train_pairs = positive_pairs(split[TRAIN], split_style)
    graph = _train_graph(train_pairs, num_nodes, add_reverse=undirected)
    o_src, o_dst = ogb_graph.edges()
    g_src, g_dst = graph.edges()
    ogb_graph_is_train = bool(torch.equal(o_src, g_src) and torch.equal(o_dst, g_dst))
    if "feat" in ogb_graph.ndata:
        feat = ogb_graph.ndata["feat"]
        graph.ndata["feat"] = feat if feat.dtype == torch.float32 else feat.to(torch.float32)
        if not torch.isfinite(graph.ndata["feat"]).all():
            raise DatasetError(f"{name}: node features contain NaN or inf")

    leaked = heldout_in_train(split, split_style, train_pairs, num_nodes, directed=not undirected)
    if not official and any(leaked.values()):
        raise DatasetError(f"{name}: valid/test edges also in the training edges ({leaked}); rewrite the dataset")
    return LinkData(
        name=name,
        graph=graph,
        num_nodes=num_nodes,
        split=split,
        split_style=split_style,
        metric=metric,
        evaluator_name=name if official else LINK_METRIC_EVALUATORS[metric],
        undirected=undirected,
        info={
            "dir": str(directory),
            "official": official,
            "undirected": undirected,
            "inverse_edges_added_by_ogb": undirected,
            "ogb_graph_edges": int(ogb_graph.num_edges()),
            "ogb_graph_is_train": ogb_graph_is_train,
            "heldout_edges_also_in_train": leaked,
            "generator": own_meta.get("info", {}),
        },
    )
