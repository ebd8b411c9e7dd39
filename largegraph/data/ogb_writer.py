"""Writes node- and link-property datasets in OGB's raw on-disk format (:mod:`largegraph.data.dataset_format`),
so that they load through OGB's own loaders.

One writer serves both tasks: each task turns its arrays into the dataset's files and OGB meta
fields, and :func:`_write_dataset` puts them on disk. Every file is streamed straight into a
temporary sibling directory and fsynced there (never built whole in memory first: a feature matrix
can be gigabytes), and the directory is renamed into place only when complete: an interrupted write
leaves the old dataset or none, never half of one that OGB would then cache in ``processed/``.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from largegraph.data.dataset_format import (
    EDGE_CSV, GRAPH_NPZ, MAPPING_DIR, META_FILE, NODE_FEAT_CSV, NODE_FEAT_SPARSE, NODE_LABEL_CSV, NODE_LABEL_NPZ,
    NUM_EDGES_CSV, NUM_NODES_CSV, RAW_DIR, RELEASE_VERSION, SPLIT_NAME, SPLITS, TRAIN, as_node_pairs,
    check_link_split, check_node_ids, dataset_dir, dataset_dir_name, format_meta, heldout_in_train,
    pairs_as_part, positive_pairs, release_marker, split_dir, split_file,
)
from largegraph.core.errors import DatasetError
from largegraph.core.fsutil import TMP_MARK, atomic_write_text, fsync_dir, write_synced

# dataset_dir is re-exported: code outside the data layer imports it from here.
__all__ = ["dataset_dir", "write_link_dataset", "write_node_dataset"]

# Above these sizes csv.gz is slow to write and to parse; OGB's binary raw format is what it uses for
# ogbn-papers100M and what pandas never has to touch.
BINARY_MIN_EDGES = 2_000_000
BINARY_MIN_FEATURE_VALUES = 20_000_000

# A file of the dataset: its path relative to the dataset directory, and what writes its content
# into an open binary file.
DatasetFile = tuple[Path, Callable[[BinaryIO], None]]
_RAW = Path(RAW_DIR)
_SPLIT = split_dir(Path(), SPLIT_NAME)


# ------------------------------------------------------------------------------- node datasets


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
    raw_format: str = "auto",
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
        feat: ``(N, D)`` float32 features, or None; a SciPy sparse matrix is stored sparse
            (``raw/node-feat-csr.npz``, see :mod:`largegraph.data.sparse`).
        labels: ``(N,)`` int class ids, ``-1`` for unlabelled nodes.
        num_classes: number of classes.
        split: ``train``/``valid``/``test`` -> node ids.
        raw_format: ``csv``, ``binary`` or ``auto`` (binary for large graphs): the files under ``raw/``.
        mappings: optional tables written to ``mapping/<key>.csv.gz`` with a header.
        info: provenance stored in ``largegraph.json`` (generator settings, source files...).

    Returns:
        The dataset directory.
    """
    edges = np.asarray(edges, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    sparse = _is_scipy_sparse(feat)
    if feat is not None and not sparse:
        feat = np.ascontiguousarray(feat, dtype=np.float32)
    _check_node_arrays(edges, num_nodes, feat, labels, num_classes, split)
    feat_dim = 0 if feat is None else feat.shape[1]
    # OGB's loader never sees sparse features (it would look for node-feat.csv.gz): they sit beside.
    dense = None if sparse else feat
    binary = _choose_binary(raw_format, len(edges), num_nodes, 0 if sparse else feat_dim)
    ogb_meta = _ogb_meta(name, binary=binary, has_features=dense is not None, add_inverse_edge=False,
                         task_fields={"num tasks": "1", "num classes": str(int(num_classes)),
                                      "task type": "multiclass classification", "eval metric": "acc"})
    storage = {"feature_storage": "sparse", "feat_nnz": int(feat.nnz)} if sparse else {}
    files = _node_files(edges, num_nodes, dense, labels, split, binary, mappings)
    if sparse:
        from largegraph.data.sparse import write_npz

        files = itertools.chain(files, [(_RAW / NODE_FEAT_SPARSE, lambda handle: write_npz(feat, handle))])
    return _write_dataset(
        root, name, "node", files, info,
        ogb_meta=ogb_meta, num_nodes=int(num_nodes), num_edges=int(len(edges)), feat_dim=int(feat_dim),
        num_classes=int(num_classes), **storage)


def _is_scipy_sparse(feat) -> bool:
    if feat is None or isinstance(feat, np.ndarray):
        return False
    import scipy.sparse

    return scipy.sparse.issparse(feat)


def _check_node_arrays(edges: np.ndarray, num_nodes: int, feat: np.ndarray | None,
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
    for key in SPLITS:
        if key not in split:
            raise DatasetError(f"split is missing its {key!r} part")


def _choose_binary(raw_format: str, num_edges: int, num_nodes: int, feat_dim: int) -> bool:
    if raw_format not in ("auto", "csv", "binary"):
        raise DatasetError(f"raw format (--layout) must be auto, csv or binary, got {raw_format!r}")
    if raw_format != "auto":
        return raw_format == "binary"
    return num_edges >= BINARY_MIN_EDGES or num_nodes * feat_dim >= BINARY_MIN_FEATURE_VALUES


def _node_files(edges: np.ndarray, num_nodes: int, feat: np.ndarray | None, labels: np.ndarray,
                split: dict[str, np.ndarray], binary: bool,
                mappings: dict[str, pd.DataFrame] | None) -> Iterator[DatasetFile]:
    if binary:
        yield from _raw_binary(edges, num_nodes, feat, labels)
    else:
        yield from _raw_csv(edges, num_nodes, feat)
        # Unlabelled nodes (-1) become empty fields: pandas reads them as NaN, which OGB keeps as NaN.
        col = pd.array(np.where(labels >= 0, labels, 0), dtype="Int64")
        col[labels < 0] = pd.NA
        yield _RAW / NODE_LABEL_CSV, _csv_gz(pd.DataFrame({"y": col}))
    for part in SPLITS:
        ids = pd.DataFrame(np.asarray(split[part], dtype=np.int64))
        yield _SPLIT / split_file("node", part), _csv_gz(ids)
    yield from _mapping_files(mappings)


def _raw_binary(edges: np.ndarray, num_nodes: int, feat: np.ndarray | None,
                labels: np.ndarray) -> Iterator[DatasetFile]:
    arrays = {
        "edge_index": np.ascontiguousarray(edges.T),
        "num_nodes_list": np.array([num_nodes], dtype=np.int64),
        "num_edges_list": np.array([len(edges)], dtype=np.int64),
    }
    if feat is not None:
        arrays["node_feat"] = feat
    # Uncompressed: np.load then maps straight into arrays without a 10x slower inflate.
    yield _RAW / GRAPH_NPZ, _npz(arrays)
    del arrays
    if (labels < 0).any():
        node_label = np.where(labels >= 0, labels, np.nan).astype(np.float32)[:, None]
    else:
        node_label = labels.astype(np.int64)[:, None]
    yield _RAW / NODE_LABEL_NPZ, _npz({"node_label": node_label})


# ------------------------------------------------------------------------------- link datasets


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
    mappings: dict[str, pd.DataFrame] | None = None,
) -> Path:
    """Write a homogeneous link-prediction dataset in OGB's linkproppred layout, atomically.

    Args:
        root, name: where, as for :func:`write_node_dataset`.
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
        mappings: optional tables written to ``mapping/<key>.csv.gz`` with a header.

    Returns:
        The dataset directory.

    Raises:
        DatasetError: inconsistent arrays (nothing is written).
    """
    if not isinstance(num_nodes, (int, np.integer)) or isinstance(num_nodes, bool) or num_nodes < 1:
        raise DatasetError(f"num_nodes must be a positive integer, got {num_nodes!r}")
    num_nodes = int(num_nodes)
    edges_train = as_node_pairs(edges_train, "edges_train")
    if len(edges_train) == 0:
        raise DatasetError("edges_train is empty; a link dataset needs training edges")
    check_node_ids(edges_train, num_nodes, "edges_train")
    if feat is not None:
        feat = np.ascontiguousarray(feat, dtype=np.float32)
        if feat.ndim != 2 or feat.shape[0] != num_nodes:
            raise DatasetError(f"features must have shape ({num_nodes}, D), got {feat.shape}")
        if not np.isfinite(feat).all():
            raise DatasetError("features contain NaN or inf")
    split = {part: dict(d) for part, d in split.items()}
    split.setdefault(TRAIN, pairs_as_part(edges_train, split_style))
    check_link_split(split, num_nodes, split_style, metric)
    if not np.array_equal(positive_pairs(split[TRAIN], split_style), edges_train):
        raise DatasetError(f"split[{TRAIN!r}] must hold exactly edges_train (same edges, same order): "
                           "the message-passing graph is the training edges")
    for part, leaked in heldout_in_train(split, split_style, edges_train, num_nodes, directed).items():
        if leaked:
            raise DatasetError(f"{leaked} {part} edges are also training edges; held-out edges must not be in "
                               f"the message-passing graph")
    # Undirected data stores each edge once and lets OGB add the reverse (as ogbl-ddi does).
    ogb_meta = _ogb_meta(name, binary=False, has_features=feat is not None, add_inverse_edge=not directed,
                         task_fields={"task type": "link prediction", "eval metric": metric})
    sizes = {part: {k: list(np.shape(v)) for k, v in split[part].items()} for part in split}
    return _write_dataset(
        root, name, "link", _link_files(edges_train, num_nodes, feat, split, mappings), info,
        ogb_meta=ogb_meta, split_style=split_style, directed=bool(directed), num_nodes=num_nodes,
        num_train_edges=int(len(edges_train)), feat_dim=0 if feat is None else int(feat.shape[1]),
        split_sizes=sizes)


def _link_files(edges_train: np.ndarray, num_nodes: int, feat: np.ndarray | None,
                split: dict[str, dict[str, np.ndarray]],
                mappings: dict[str, pd.DataFrame] | None) -> Iterator[DatasetFile]:
    import torch  # only link datasets need it; node writing stays torch-free

    yield from _raw_csv(edges_train, num_nodes, feat)
    for part in SPLITS:
        # Plain tensors (not numpy arrays) so that torch.load(weights_only=True) can read them too.
        tensors = {k: torch.as_tensor(np.ascontiguousarray(np.asarray(v, dtype=np.int64)))
                   for k, v in split[part].items()}
        yield _SPLIT / split_file("link", part), lambda handle, tensors=tensors: torch.save(tensors, handle)
    yield from _mapping_files(mappings)


# ----------------------------------------------------------------------------- shared by both


def _ogb_meta(name: str, *, binary: bool, has_features: bool, add_inverse_edge: bool,
              task_fields: dict[str, str]) -> dict:
    """OGB's meta_dict for a homogeneous dataset of ours (all values strings, as OGB's master.csv has
    them); ``task_fields`` are the node or link task's own entries."""
    return {
        "version": RELEASE_VERSION,
        "download_name": dataset_dir_name(name),
        # Never fetched: largegraph checks the files before OGB gets a chance to download.
        "url": "file:///largegraph/local-dataset-has-no-download",
        "add_inverse_edge": str(bool(add_inverse_edge)),
        "has_node_attr": str(bool(has_features)),
        "has_edge_attr": "False",
        "split": SPLIT_NAME,
        "additional node files": "None",
        "additional edge files": "None",
        "is hetero": "False",
        "binary": str(bool(binary)),
        **task_fields,
    }


def _raw_csv(edges: np.ndarray, num_nodes: int, feat: np.ndarray | None) -> Iterator[DatasetFile]:
    """OGB's csv raw files of a homogeneous graph (labels, a node-task file, come separately)."""
    yield _RAW / EDGE_CSV, _csv_gz(pd.DataFrame(edges))
    yield _RAW / NUM_NODES_CSV, _csv_gz(pd.DataFrame([num_nodes]))
    yield _RAW / NUM_EDGES_CSV, _csv_gz(pd.DataFrame([len(edges)]))
    if feat is not None:
        # %.9g round-trips float32 exactly through OGB's float64 parse and float32 cast.
        yield _RAW / NODE_FEAT_CSV, _csv_gz(pd.DataFrame(feat), float_format="%.9g")


def _mapping_files(mappings: dict[str, pd.DataFrame] | None) -> Iterator[DatasetFile]:
    """Tables kept beside the data (original node ids, class names), one ``csv.gz`` with a header each."""
    for key, frame in (mappings or {}).items():
        yield Path(MAPPING_DIR, f"{key}.csv.gz"), _csv_gz(frame, header=True)


def _csv_gz(frame: pd.DataFrame, *, header: bool = False,
            float_format: str | None = None) -> Callable[[BinaryIO], None]:
    """A table as gzipped CSV."""
    def write(handle: BinaryIO) -> None:
        # compresslevel 1: these files are written once and read once; speed beats size here.
        frame.to_csv(handle, header=header, index=False, float_format=float_format,
                     compression={"method": "gzip", "compresslevel": 1})
    return write


def _npz(arrays: dict[str, np.ndarray]) -> Callable[[BinaryIO], None]:
    return lambda handle: np.savez(handle, **arrays)


def _write_dataset(root: str | os.PathLike, name: str, task: str, files: Iterable[DatasetFile],
                   info: dict | None, **fields) -> Path:
    """Write ``files`` and ``largegraph.json`` (task, ``fields``, ``info``) as dataset ``root/name``."""
    with _staged(root, name) as tmp:
        for relative, write in files:
            path = tmp / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            # no temp-and-rename per file: the staged directory is the unit that is swapped in
            write_synced(path, write)
        atomic_write_text(tmp / META_FILE, format_meta(name, task, info, **fields))
        atomic_write_text(release_marker(tmp), f"{name}: written by largegraph in OGB layout v{RELEASE_VERSION}\n")
    return dataset_dir(root, name)


@contextlib.contextmanager
def _staged(root: str | os.PathLike, name: str) -> Iterator[Path]:
    """A temporary sibling directory that becomes ``root/<name>`` only if the body completes.

    fsutil replaces single files; a dataset is many files that must change together, so the
    directory is the unit swapped here. Its files are already durable (fsynced); the folders
    made for them and the final rename are fsynced too, so a power cut cannot leave a renamed
    dataset with missing entries.
    """
    final = dataset_dir(root, name)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}{TMP_MARK}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        for folder in [tmp, *(p for p in tmp.rglob("*") if p.is_dir())]:
            fsync_dir(folder)
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(final.parent)


def _replace_dir(new: Path, final: Path) -> None:
    """Swap ``new`` into ``final`` so that ``final`` is always either the old or the new dataset."""
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)
