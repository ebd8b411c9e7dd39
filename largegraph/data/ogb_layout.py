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

import json
import os
import shutil
import time
from pathlib import Path

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

    final = dataset_dir(root, name)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "raw").mkdir(parents=True)
    try:
        writer = _write_raw_binary if binary else _write_raw_csv
        writer(tmp / "raw", edges, num_nodes, feat, labels)
        _write_split(tmp / "split" / "largegraph", split)
        if mappings:
            (tmp / "mapping").mkdir()
            for key, frame in mappings.items():
                frame.to_csv(tmp / "mapping" / f"{key}.csv.gz", index=False, compression="gzip")
        meta = {
            "format": FORMAT,
            "name": name,
            "task": "node",
            "ogb_meta": node_meta_dict(name, num_classes, binary, feat is not None),
            "num_nodes": int(num_nodes),
            "num_edges": int(len(edges)),
            "feat_dim": int(feat_dim),
            "num_classes": int(num_classes),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "info": info or {},
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / "RELEASE_v1.txt").write_text(f"{name}: written by largegraph in OGB layout v1\n")
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


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
