"""Writes node-property datasets in OGB's raw on-disk layout, so they load through OGB's own loader.

A dataset directory ``<root>/<name with - replaced by _>/`` holds::

    RELEASE_v1.txt                 the release marker OGB checks (without it OGB prompts on stdin)
    largegraph.json                OGB's meta_dict for this dataset plus our provenance
    raw/edge.csv.gz ...            small graphs: OGB's csv.gz files
    raw/data.npz, node-label.npz   large graphs: OGB's binary layout (as ogbn-papers100M)
    split/<split>/{train,valid,test}.csv.gz
    mapping/*.csv.gz               optional: original ids, label names

Everything is written into a temporary sibling directory and renamed into place, so an interrupted
write never leaves a half dataset that OGB would then cache in ``processed/``.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from largegraph.errors import DatasetError

META_FILE = "largegraph.json"
FORMAT = "largegraph-ogb/1"
# Above these sizes csv.gz is slow to write and to parse; OGB's binary layout is what it uses for
# ogbn-papers100M and what pandas never has to touch.
BINARY_MIN_EDGES = 2_000_000
BINARY_MIN_FEATURE_VALUES = 20_000_000


def dataset_dir_name(name: str) -> str:
    """OGB's directory naming: ``ogbn-arxiv`` lives in ``ogbn_arxiv``."""
    return "_".join(name.split("-"))


def dataset_dir(root: str | os.PathLike, name: str) -> Path:
    return Path(root) / dataset_dir_name(name)


def _gz(path: Path, frame: pd.DataFrame, float_format: str | None = None) -> None:
    # compresslevel 1: these files are written once and read once; speed beats size here.
    frame.to_csv(
        path, header=False, index=False, float_format=float_format,
        compression={"method": "gzip", "compresslevel": 1},
    )


def _choose_binary(layout: str, num_edges: int, num_nodes: int, feat_dim: int) -> bool:
    if layout not in ("auto", "csv", "binary"):
        raise DatasetError(f"layout must be auto, csv or binary, got {layout!r}")
    if layout != "auto":
        return layout == "binary"
    return num_edges >= BINARY_MIN_EDGES or num_nodes * feat_dim >= BINARY_MIN_FEATURE_VALUES


def node_meta_dict(name: str, num_classes: int, binary: bool, has_features: bool) -> dict:
    """OGB's meta_dict fields for a single-label multiclass node dataset (all values strings, as OGB's
    master.csv has them)."""
    return {
        "version": "1",
        "download_name": dataset_dir_name(name),
        # Never fetched: largegraph checks the files before OGB gets a chance to download.
        "url": "file:///largegraph/local-dataset-has-no-download",
        "add_inverse_edge": "False",
        "has_node_attr": str(bool(has_features)),
        "has_edge_attr": "False",
        "split": "largegraph",
        "additional node files": "None",
        "additional edge files": "None",
        "is hetero": "False",
        "binary": str(bool(binary)),
        "num tasks": "1",
        "num classes": str(int(num_classes)),
        "task type": "multiclass classification",
        "eval metric": "acc",
    }


def _write_raw_csv(raw: Path, edges: np.ndarray, num_nodes: int, feat: np.ndarray | None,
                   labels: np.ndarray) -> None:
    _gz(raw / "edge.csv.gz", pd.DataFrame(edges))
    _gz(raw / "num-node-list.csv.gz", pd.DataFrame([num_nodes]))
    _gz(raw / "num-edge-list.csv.gz", pd.DataFrame([len(edges)]))
    if feat is not None:
        # %.9g round-trips float32 exactly through OGB's float64 parse and float32 cast.
        _gz(raw / "node-feat.csv.gz", pd.DataFrame(feat), float_format="%.9g")
    # Unlabelled nodes (-1) become empty fields: pandas reads them as NaN, which OGB keeps as NaN.
    col = pd.array(np.where(labels >= 0, labels, 0), dtype="Int64")
    col[labels < 0] = pd.NA
    _gz(raw / "node-label.csv.gz", pd.DataFrame({"y": col}))


def _write_raw_binary(raw: Path, edges: np.ndarray, num_nodes: int, feat: np.ndarray | None,
                      labels: np.ndarray) -> None:
    arrays = {
        "edge_index": np.ascontiguousarray(edges.T),
        "num_nodes_list": np.array([num_nodes], dtype=np.int64),
        "num_edges_list": np.array([len(edges)], dtype=np.int64),
    }
    if feat is not None:
        arrays["node_feat"] = feat
    # Uncompressed: np.load then maps straight into arrays without a 10x slower inflate.
    np.savez(raw / "data.npz", **arrays)
    if (labels < 0).any():
        node_label = np.where(labels >= 0, labels, np.nan).astype(np.float32)[:, None]
    else:
        node_label = labels.astype(np.int64)[:, None]
    np.savez(raw / "node-label.npz", node_label=node_label)


def _write_split(split_dir: Path, split: dict[str, np.ndarray]) -> None:
    split_dir.mkdir(parents=True)
    for key in ("train", "valid", "test"):
        _gz(split_dir / f"{key}.csv.gz", pd.DataFrame(np.asarray(split[key], dtype=np.int64)))


def check_node_arrays(edges: np.ndarray, num_nodes: int, feat: np.ndarray | None,
                      labels: np.ndarray, num_classes: int, split: dict[str, np.ndarray]) -> None:
    """Reject inconsistent arrays before anything is written (raises DatasetError)."""
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise DatasetError(f"edges must have shape (E, 2), got {edges.shape}")
    if len(edges) and (edges.min() < 0 or edges.max() >= num_nodes):
        raise DatasetError(f"edge endpoints must lie in [0, {num_nodes}), got [{edges.min()}, {edges.max()}]")
    if feat is not None and feat.shape[0] != num_nodes:
        raise DatasetError(f"features have {feat.shape[0]} rows for {num_nodes} nodes")
    if labels.shape != (num_nodes,):
        raise DatasetError(f"labels must have shape ({num_nodes},), got {labels.shape}")
    if labels.max(initial=-1) >= num_classes:
        raise DatasetError(f"label {labels.max()} is out of range for {num_classes} classes")
    for key in ("train", "valid", "test"):
        if key not in split:
            raise DatasetError(f"split is missing its {key!r} part")


def write_node_dataset(
    root: str | os.PathLike,
    name: str,
    *,
    edges: np.ndarray,
    num_nodes: int,
    feat: np.ndarray | None,
    labels: np.ndarray,
    num_classes: int,
    split: dict[str, np.ndarray],
    layout: str = "auto",
    mappings: dict[str, pd.DataFrame] | None = None,
    info: dict | None = None,
) -> Path:
    """Write a homogeneous node-classification dataset in OGB's layout, atomically.

    Args:
        root: directory that holds datasets (as OGB's ``root``).
        name: dataset name; the directory is ``root/<name with - as _>``.
        edges: ``(E, 2)`` int array of ``src, dst``; an undirected edge is stored once and the loader
            adds the reverse direction.
        num_nodes: number of nodes N.
        feat: ``(N, D)`` float32 features, or None.
        labels: ``(N,)`` int class ids, ``-1`` for unlabelled nodes.
        num_classes: number of classes.
        split: ``train``/``valid``/``test`` -> node ids.
        layout: ``csv``, ``binary`` or ``auto`` (binary for large graphs).
        mappings: optional tables written to ``mapping/<key>.csv.gz`` with a header.
        info: provenance stored in ``largegraph.json`` (generator settings, source files...).

    Returns:
        The dataset directory.
    """
    edges = np.asarray(edges, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if feat is not None:
        feat = np.ascontiguousarray(feat, dtype=np.float32)
    check_node_arrays(edges, num_nodes, feat, labels, num_classes, split)
    feat_dim = 0 if feat is None else feat.shape[1]
    binary = _choose_binary(layout, len(edges), num_nodes, feat_dim)

    with _staged(root, name) as tmp:
        writer = _write_raw_binary if binary else _write_raw_csv
        writer(tmp / "raw", edges, num_nodes, feat, labels)
        _write_split(tmp / "split" / "largegraph", split)
        if mappings:
            (tmp / "mapping").mkdir()
            for key, frame in mappings.items():
                frame.to_csv(tmp / "mapping" / f"{key}.csv.gz", index=False, compression="gzip")
        _write_meta(tmp, name, "node", info,
                    ogb_meta=node_meta_dict(name, num_classes, binary, feat is not None),
                    num_nodes=int(num_nodes), num_edges=int(len(edges)), feat_dim=int(feat_dim),
                    num_classes=int(num_classes))
    return dataset_dir(root, name)


@contextlib.contextmanager
def _staged(root: str | os.PathLike, name: str) -> Iterator[Path]:
    """A temporary sibling directory that becomes ``root/<name>`` (with OGB's release marker) only if
    the body completes: an interrupted write leaves the old dataset, or none, never half of one."""
    final = dataset_dir(root, name)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "raw").mkdir(parents=True)
    try:
        yield tmp
        (tmp / "RELEASE_v1.txt").write_text(f"{name}: written by largegraph in OGB layout v1\n")
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_meta(directory: Path, name: str, task: str, info: dict | None, **fields) -> None:
    meta = {"format": FORMAT, "name": name, "task": task, **fields,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "info": info or {}}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def _replace_dir(new: Path, final: Path) -> None:
    """Swap ``new`` into ``final`` so that ``final`` is always either the old or the new dataset."""
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def read_meta(directory: Path) -> dict:
    """Read ``largegraph.json`` of a dataset directory (raises DatasetError if unreadable)."""
    path = directory / META_FILE
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}; rewrite the dataset with `largegraph data`") from None
    if meta.get("format") != FORMAT:
        raise DatasetError(f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}; rewrite the dataset")
    return meta


# ---------------------------------------------------------------------------------------------------
# Link-property datasets (OGB's linkproppred layout)
#
#     RELEASE_v1.txt, largegraph.json      as for node datasets ("task": "link")
#     raw/edge.csv.gz                      the TRAINING edges only (the message-passing graph), each
#                                          undirected edge once; OGB adds the reverse edges itself
#                                          (meta add_inverse_edge = True), as for ogbl-ddi/collab/ppa
#     raw/num-node-list.csv.gz, num-edge-list.csv.gz, node-feat.csv.gz (optional)
#     split/largegraph/{train,valid,test}.pt   torch.save'd dicts of int64 tensors, read by OGB's
#                                          DglLinkPropPredDataset.get_edge_split()

LINK_SPLIT_STYLES = ("edge", "source_target")
# The metrics OGB's linkproppred Evaluator computes, each with the official homogeneous dataset whose
# Evaluator is used to score ours (an Evaluator takes only an official name).
LINK_METRIC_EVALUATORS = {
    "hits@20": "ogbl-ddi",
    "hits@50": "ogbl-collab",
    "hits@100": "ogbl-ppa",
    "mrr": "ogbl-citation2",
    "rocauc": "ogbl-vessel",
}
# mrr ranks each positive against its own K negatives (citation2 style); hits@K and rocauc compare
# positive edges with one shared pool of negative edges (collab/ddi style).
LINK_METRIC_STYLE = {"mrr": "source_target", "hits@20": "edge", "hits@50": "edge", "hits@100": "edge",
                     "rocauc": "edge"}


def link_meta_dict(name: str, metric: str, has_features: bool, directed: bool = False) -> dict:
    """OGB's meta_dict fields for a homogeneous link-prediction dataset (strings, as in master.csv)."""
    return {
        "version": "1",
        "download_name": dataset_dir_name(name),
        "url": "file:///largegraph/local-dataset-has-no-download",
        # Undirected data stores each edge once and lets OGB add the reverse (as ogbl-ddi does).
        "add_inverse_edge": str(not directed),
        "has_node_attr": str(bool(has_features)),
        "has_edge_attr": "False",
        "split": "largegraph",
        "additional node files": "None",
        "additional edge files": "None",
        "is hetero": "False",
        "binary": "False",
        "task type": "link prediction",
        "eval metric": metric,
    }


def _as_pairs(value, what: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu" and arr.size:
        raise DatasetError(f"{what} must hold integer node ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DatasetError(f"{what} must have shape (E, 2), got {arr.shape}")
    return arr


def _check_ids(arr: np.ndarray, num_nodes: int, what: str) -> None:
    if arr.size and (arr.min() < 0 or arr.max() >= num_nodes):
        raise DatasetError(f"{what} holds node ids in [{arr.min()}, {arr.max()}], outside [0, {num_nodes})")


def check_link_split(split: dict, num_nodes: int, split_style: str, metric: str, where: str = "split") -> None:
    """Check a link split as OGB's ``get_edge_split()`` returns it (numpy arrays or tensors).

    Raises:
        DatasetError: one line naming the part (``valid['edge_neg']``...) that is wrong.
    """
    if split_style not in LINK_SPLIT_STYLES:
        raise DatasetError(f"split_style must be one of {LINK_SPLIT_STYLES}, got {split_style!r}")
    if metric not in LINK_METRIC_EVALUATORS:
        raise DatasetError(f"unknown link metric {metric!r}; OGB's Evaluator knows {', '.join(LINK_METRIC_EVALUATORS)}")
    if LINK_METRIC_STYLE[metric] != split_style:
        raise DatasetError(f"metric {metric} needs a {LINK_METRIC_STYLE[metric]}-style split, got {split_style}")
    for part in ("train", "valid", "test"):
        if part not in split:
            raise DatasetError(f"{where} is missing its {part!r} part")
        d = split[part]
        if split_style == "edge":
            need = ["edge"] + (["edge_neg"] if part != "train" else [])
        else:
            need = ["source_node", "target_node"] + (["target_node_neg"] if part != "train" else [])
        for key in need:
            if key not in d:
                raise DatasetError(f"{where}[{part!r}] has no {key!r} ({split_style}-style split needs {need})")
        if split_style == "edge":
            pos = _as_pairs(d["edge"], f"{where}[{part!r}]['edge']")
            count = len(pos)
            _check_ids(pos, num_nodes, f"{where}[{part!r}]['edge']")
            if "edge_neg" in d:
                neg = _as_pairs(d["edge_neg"], f"{where}[{part!r}]['edge_neg']")
                _check_ids(neg, num_nodes, f"{where}[{part!r}]['edge_neg']")
                if part != "train" and len(neg) == 0:
                    raise DatasetError(f"{where}[{part!r}]['edge_neg'] is empty; evaluation needs negative edges")
        else:
            src = np.asarray(d["source_node"]).astype(np.int64, copy=False)
            dst = np.asarray(d["target_node"]).astype(np.int64, copy=False)
            if src.ndim != 1 or src.shape != dst.shape:
                raise DatasetError(f"{where}[{part!r}] source_node {src.shape} and target_node {dst.shape} "
                                   f"must be 1-d and of equal length")
            count = len(src)
            _check_ids(src, num_nodes, f"{where}[{part!r}]['source_node']")
            _check_ids(dst, num_nodes, f"{where}[{part!r}]['target_node']")
            if "target_node_neg" in d:
                neg = np.asarray(d["target_node_neg"]).astype(np.int64, copy=False)
                if neg.ndim != 2 or neg.shape[0] != count or neg.shape[1] == 0:
                    raise DatasetError(f"{where}[{part!r}]['target_node_neg'] must have shape ({count}, K>0), "
                                       f"got {neg.shape}")
                _check_ids(neg, num_nodes, f"{where}[{part!r}]['target_node_neg']")
        if count == 0:
            raise DatasetError(f"{where}[{part!r}] has no positive edges; every split needs edges")


def write_link_dataset(
    root: str | os.PathLike,
    name: str,
    *,
    edges_train: np.ndarray,
    num_nodes: int,
    feat: np.ndarray | None,
    split: dict[str, dict[str, np.ndarray]],
    split_style: str,
    metric: str,
    directed: bool = False,
    info: dict | None = None,
) -> Path:
    """Write a homogeneous link-prediction dataset in OGB's linkproppred layout, atomically.

    Args:
        root: directory that holds datasets (as OGB's ``root``).
        name: dataset name; the directory is ``root/<name with - as _>``.
        edges_train: ``(E, 2)`` training edges = the message-passing graph, each undirected edge once
            (OGB adds reverses on load unless ``directed``). Must be the same edges as the train split.
        num_nodes: number of nodes N.
        feat: ``(N, D)`` float32 node features, or None (featureless, like ogbl-ddi).
        split: ``train``/``valid``/``test`` dicts as OGB's ``get_edge_split()`` returns them:
            ``edge`` ``(E, 2)`` [+ ``edge_neg`` ``(E', 2)``], or ``source_node``/``target_node``
            ``(E,)`` [+ ``target_node_neg`` ``(E, K)``]; valid/test need their negatives. If ``train``
            is absent it is made from ``edges_train``.
        split_style: ``edge`` or ``source_target``.
        metric: OGB link metric (``hits@20``, ``hits@50``, ``hits@100``, ``mrr``, ``rocauc``).
        directed: True stores the graph one way only (OGB adds no reverse edges).
        info: provenance stored in ``largegraph.json``.

    Returns:
        The dataset directory.

    Raises:
        DatasetError: inconsistent arrays (nothing is written).
    """
    if not isinstance(num_nodes, (int, np.integer)) or isinstance(num_nodes, bool) or num_nodes < 1:
        raise DatasetError(f"num_nodes must be a positive integer, got {num_nodes!r}")
    num_nodes = int(num_nodes)
    edges_train = _as_pairs(edges_train, "edges_train")
    if len(edges_train) == 0:
        raise DatasetError("edges_train is empty; a link dataset needs training edges")
    _check_ids(edges_train, num_nodes, "edges_train")
    if feat is not None:
        feat = np.ascontiguousarray(feat, dtype=np.float32)
        if feat.ndim != 2 or feat.shape[0] != num_nodes:
            raise DatasetError(f"features must have shape ({num_nodes}, D), got {feat.shape}")
        if not np.isfinite(feat).all():
            raise DatasetError("features contain NaN or inf")
    split = {part: dict(d) for part, d in split.items()}
    if "train" not in split:
        split["train"] = ({"edge": edges_train} if split_style == "edge" else
                          {"source_node": edges_train[:, 0], "target_node": edges_train[:, 1]})
    check_link_split(split, num_nodes, split_style, metric)
    train = split["train"]
    train_pairs = (_as_pairs(train["edge"], "split['train']['edge']") if split_style == "edge" else
                   np.stack([np.asarray(train["source_node"]), np.asarray(train["target_node"])], 1).astype(np.int64))
    if not np.array_equal(train_pairs, edges_train):
        raise DatasetError("split['train'] must hold exactly edges_train (same edges, same order): "
                           "the message-passing graph is the training edges")
    _check_heldout_not_in_train(split, split_style, edges_train, num_nodes, directed)

    with _staged(root, name) as tmp:
        raw = tmp / "raw"
        _gz(raw / "edge.csv.gz", pd.DataFrame(edges_train))
        _gz(raw / "num-node-list.csv.gz", pd.DataFrame([num_nodes]))
        _gz(raw / "num-edge-list.csv.gz", pd.DataFrame([len(edges_train)]))
        if feat is not None:
            _gz(raw / "node-feat.csv.gz", pd.DataFrame(feat), float_format="%.9g")
        import torch  # only link datasets need it; node writing stays torch-free

        split_dir = tmp / "split" / "largegraph"
        split_dir.mkdir(parents=True)
        for part in ("train", "valid", "test"):
            # Plain tensors (not numpy arrays) so that torch.load(weights_only=True) can read them too.
            tensors = {k: torch.as_tensor(np.ascontiguousarray(np.asarray(v, dtype=np.int64)))
                       for k, v in split[part].items()}
            torch.save(tensors, split_dir / f"{part}.pt")
        sizes = {part: {k: list(np.shape(v)) for k, v in split[part].items()} for part in split}
        _write_meta(tmp, name, "link", info,
                    ogb_meta=link_meta_dict(name, metric, feat is not None, directed),
                    split_style=split_style, directed=bool(directed), num_nodes=num_nodes,
                    num_train_edges=int(len(edges_train)),
                    feat_dim=0 if feat is None else int(feat.shape[1]), split_sizes=sizes)
    return dataset_dir(root, name)


def link_pair_keys(pairs: np.ndarray, num_nodes: int, directed: bool = False) -> np.ndarray:
    """int64 keys of node pairs (``min * N + max`` for undirected data, ``src * N + dst`` otherwise)."""
    pairs = np.asarray(pairs, dtype=np.int64)
    a, b = pairs[:, 0], pairs[:, 1]
    if directed:
        return a * num_nodes + b
    return np.minimum(a, b) * num_nodes + np.maximum(a, b)


def positive_pairs(part: dict, split_style: str) -> np.ndarray:
    """The positive edges of one split part as an ``(E, 2)`` int64 array."""
    if split_style == "edge":
        return np.asarray(part["edge"], dtype=np.int64).reshape(-1, 2)
    return np.stack([np.asarray(part["source_node"], dtype=np.int64),
                     np.asarray(part["target_node"], dtype=np.int64)], 1)


def _check_heldout_not_in_train(split: dict, split_style: str, edges_train: np.ndarray, num_nodes: int,
                                directed: bool) -> None:
    train_keys = np.unique(link_pair_keys(edges_train, num_nodes, directed))
    for part in ("valid", "test"):
        keys = link_pair_keys(positive_pairs(split[part], split_style), num_nodes, directed)
        leaked = int(np.isin(keys, train_keys).sum())
        if leaked:
            raise DatasetError(f"{leaked} {part} edges are also training edges; held-out edges must not be in "
                               f"the message-passing graph")
