"""Link-prediction datasets through OGB's own DGL loader (``DglLinkPropPredDataset``), for official
``ogbl-*`` names and for datasets that largegraph wrote in OGB's linkproppred layout.

The same rules as for node datasets (``largegraph.data.ogb``): every file OGB would download or ask
about is checked first, stdin is closed and stdout redirected while OGB runs, and first loads are
serialised by a lock on the dataset directory.

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
from pathlib import Path

import dgl
import numpy as np
import pandas as pd
import torch

from largegraph.data.ogb import read_with_ogb, require_raw_and_marker, resolve_dataset
from largegraph.data.ogb_layout import (
    LINK_METRIC_EVALUATORS, check_link_split, link_pair_keys, positive_pairs,
)
from largegraph.errors import DatasetError

SPLITS = ("train", "valid", "test")


@dataclass
class LinkData:
    """A link-prediction dataset: message-passing graph of training edges plus OGB's edge split.

    Attributes:
        name: dataset name (``ogbl-ddi``, ``synth-links``...).
        graph: message-passing graph of the training edges only (both directions for undirected
            data); ``ndata['feat']`` float32 when the dataset has node features (ogbl-ddi has none).
        num_nodes: number of nodes.
        split: ``train``/``valid``/``test`` -> dict of int64 tensors as OGB's ``get_edge_split()``
            returns them: ``edge`` ``(E, 2)`` [+ ``edge_neg``] or ``source_node``/``target_node``
            [+ ``target_node_neg`` ``(E, K)``].
        split_style: ``edge`` or ``source_target``.
        metric: OGB's eval metric (``hits@20``, ``hits@50``, ``mrr``...).
        evaluator_name: OGB dataset whose ``ogb.linkproppred.Evaluator`` scores this dataset.
        info: provenance (directory, official, directedness, leak counts...).
    """

    name: str
    graph: dgl.DGLGraph
    num_nodes: int
    split: dict[str, dict[str, torch.Tensor]]
    split_style: str
    metric: str
    evaluator_name: str
    info: dict = field(default_factory=dict)

    @property
    def feat_dim(self) -> int:
        return int(self.graph.ndata["feat"].shape[1]) if "feat" in self.graph.ndata else 0

    def describe(self) -> str:
        """One line for logs: sizes of graph and splits."""
        parts = []
        for part in SPLITS:
            d = self.split[part]
            pos = d["edge"] if "edge" in d else d["source_node"]
            neg = d.get("edge_neg", d.get("target_node_neg"))
            parts.append(f"{part}={len(pos)}" + ("" if neg is None else f"(+{tuple(neg.shape)} neg)"))
        return (f"{self.name}: {self.num_nodes} nodes, {self.graph.num_edges()} message-passing edges, "
                f"{self.feat_dim}-d features, {self.metric}, split {' '.join(parts)}")


def official_link_meta() -> pd.DataFrame:
    """OGB's master table of link-property datasets (one column per dataset)."""
    import ogb.linkproppred

    path = Path(ogb.linkproppred.__file__).parent / "master.csv"
    return pd.read_csv(path, index_col=0, keep_default_na=False)


def _require_link_files(directory: Path, meta: dict, name: str, how_to_get: str) -> None:
    raw_needed = ["data.npz"] if meta["binary"] == "True" else ["edge.csv.gz"]
    require_raw_and_marker(directory, meta, name, how_to_get, raw_needed)
    split_dir = directory / "split" / meta["split"]
    if not (split_dir / "split_dict.pt").exists():
        for part in SPLITS:
            path = split_dir / f"{part}.pt"
            if not path.exists():
                raise DatasetError(f"split file {path} is missing; re-extract the dataset")


def _read_with_ogb(name: str, directory: Path, meta: dict, official: bool):
    from ogb.linkproppred import DglLinkPropPredDataset

    dataset, split = read_with_ogb(DglLinkPropPredDataset, "get_edge_split", name, directory, meta, official)
    return dataset[0], split


def _to_int64_split(split: dict) -> dict[str, dict[str, torch.Tensor]]:
    out = {}
    for part in SPLITS:
        out[part] = {}
        for key, value in split[part].items():
            t = torch.as_tensor(np.asarray(value))
            if t.is_floating_point() and key in ("weight", "year"):
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


def load_link_dataset(name: str, root: str | os.PathLike) -> LinkData:
    """Load a link-prediction dataset through OGB's ``DglLinkPropPredDataset``.

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
    directory, meta, official, own_meta = resolve_dataset(
        name, root, "link", official_link_meta(), _require_link_files, "`largegraph data synth link`")
    if meta["is hetero"] == "True" or meta["task type"] != "link prediction":
        raise DatasetError(f"{name} is a {'heterogeneous ' if meta['is hetero'] == 'True' else ''}"
                           f"{meta['task type']} dataset; largegraph does homogeneous link prediction")
    metric = meta["eval metric"]
    if metric not in LINK_METRIC_EVALUATORS:
        raise DatasetError(f"{name}: unknown link metric {metric!r}; OGB's Evaluator knows "
                           f"{', '.join(LINK_METRIC_EVALUATORS)}")
    ogb_graph, raw_split = _read_with_ogb(name, directory, meta, official)
    num_nodes = int(ogb_graph.num_nodes())
    if not all(part in raw_split for part in SPLITS):
        raise DatasetError(f"{name}: OGB's split has parts {sorted(raw_split)}, expected {list(SPLITS)}")
    train = raw_split["train"]
    if "edge" in train:
        split_style = "edge"
    elif "source_node" in train and "target_node" in train:
        split_style = "source_target"
    else:
        raise DatasetError(f"{name}: train split has keys {sorted(train)}; expected 'edge' or "
                           f"'source_node'/'target_node'")
    if split_style == "edge" and np.asarray(train["edge"]).size == 0 or \
            split_style == "source_target" and np.asarray(train["source_node"]).size == 0:
        raise DatasetError(f"{name}: the train split has no edges ({directory}); link prediction needs training edges")
    check_link_split(raw_split, num_nodes, split_style, metric, where=f"{name} split")
    split = _to_int64_split(raw_split)

    undirected = meta["add_inverse_edge"] == "True"
    train_pairs = positive_pairs(split["train"], split_style)
    graph = _train_graph(train_pairs, num_nodes, add_reverse=undirected)
    o_src, o_dst = ogb_graph.edges()
    g_src, g_dst = graph.edges()
    ogb_graph_is_train = bool(torch.equal(o_src, g_src) and torch.equal(o_dst, g_dst))
    if "feat" in ogb_graph.ndata:
        feat = ogb_graph.ndata["feat"]
        graph.ndata["feat"] = feat if feat.dtype == torch.float32 else feat.to(torch.float32)
        if not torch.isfinite(graph.ndata["feat"]).all():
            raise DatasetError(f"{name}: node features contain NaN or inf")

    train_keys = np.unique(link_pair_keys(train_pairs, num_nodes, directed=not undirected))
    leaked = {part: int(np.isin(link_pair_keys(positive_pairs(split[part], split_style), num_nodes,
                                               directed=not undirected), train_keys).sum())
              for part in ("valid", "test")}
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
