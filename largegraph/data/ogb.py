"""Datasets through OGB's own DGL loaders: the reading helpers shared by node and link datasets
(finding a dataset, checking its files, opening it with OGB) and the node-property loader.

OGB's loader downloads missing files and asks questions on stdin (large downloads; "update the
dataset?" when the ``RELEASE_v*.txt`` marker is missing). Machines running largegraph often have no
internet and no terminal, so every file OGB would look for is checked here first, stdin is closed
while OGB runs (a question that slips through fails instead of hanging a job), and first loads are
serialised by a lock on the dataset directory.
"""
from __future__ import annotations

import contextlib
import fcntl
import gzip
import importlib
import io
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from largegraph.data.graph import GraphData
from largegraph.data.sparse import SparseFeatures, read_npz
from largegraph.data.dataset_format import (
    LOCK_FILE, META_FILE, NODE_FEAT_SPARSE, PROCESSED_CACHE, RAW_DIR, SPLIT_DICT, SPLITS, dataset_dir, official_dataset_dir,
    raw_files, read_meta, release_marker, split_dir, split_file,
)
from largegraph.core.errors import DatasetError


@dataclass(frozen=True)
class _OgbTask:
    """How OGB serves one task: its package (with ``master.csv``), DGL dataset class and split method."""

    package: str
    dataset_class: str
    split_method: str
    kind: str  # for messages
    how_to_make: str  # the CLI that writes such a dataset


_TASKS = {
    "node": _OgbTask("ogb.nodeproppred", "DglNodePropPredDataset", "get_idx_split", "node-classification",
                     "`largegraph data synth node` or `largegraph data import`"),
    "link": _OgbTask("ogb.linkproppred", "DglLinkPropPredDataset", "get_edge_split", "link-prediction",
                     "`largegraph data synth link`"),
}


def official_meta(task: str) -> pd.DataFrame:
    """OGB's master table of ``task`` (``node``/``link``) datasets (one column per dataset)."""
    package = importlib.import_module(_TASKS[task].package)
    return pd.read_csv(Path(package.__file__).parent / "master.csv", index_col=0, keep_default_na=False)


def require_files(directory: Path, meta: dict, name: str, how_to_get: str, task: str) -> None:
    """Check every file OGB's ``task`` loader would otherwise download or prompt about: the raw
    files (unless OGB's processed cache exists), the ``RELEASE_v*.txt`` marker and the split.

    Raises:
        DatasetError: naming the missing file and ``how_to_get`` it.
    """
    needed = raw_files(task, meta["binary"] == "True")
    missing = [f"{RAW_DIR}/{f}" for f in needed if not (directory / RAW_DIR / f).exists()]
    if not directory.is_dir() or (missing and not (directory / PROCESSED_CACHE).exists()):
        raise DatasetError(f"dataset {name} not found: expected {directory}/{missing[0] if missing else ''}; {how_to_get}")
    marker = release_marker(directory, meta["version"])
    if not marker.exists():
        raise DatasetError(
            f"{marker} is missing, so OGB would ask to re-download {name}; restore the marker file from "
            f"OGB's zip (or `touch` it if the files are OGB release v{meta['version']})"
        )
    folder = split_dir(directory, meta["split"])
    if (folder / SPLIT_DICT).exists():
        return
    for part in SPLITS:
        path = folder / split_file(task, part)
        if not path.exists():
            raise DatasetError(f"split file {path} is missing; re-extract the dataset")
        # A node split is node ids in csv.gz; a link split's emptiness is checked once it is read.
        if task == "node" and _gzip_is_empty(path):
            raise DatasetError(f"{name}: the {part} split is empty ({path}); every split needs nodes")


def _gzip_is_empty(path: Path) -> bool:
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read(1) == b""
    except (OSError, EOFError):
        raise DatasetError(f"{path} is not a readable gzip file; re-extract the dataset") from None


@contextlib.contextmanager
def _quiet_and_closed_stdin():
    """OGB prints progress to stdout and may call input(); keep stdout for our own output and make
    any prompt fail immediately instead of blocking a headless job."""
    saved = sys.stdin
    sys.stdin = io.StringIO("")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdin = saved


@contextlib.contextmanager
def dataset_lock(directory: Path, name: str = LOCK_FILE):
    """OGB caches the processed graph on first load; concurrent first loads (several ranks or jobs)
    would otherwise write the cache file at the same time. ``name``: the lock file in ``directory``
    (locks on different files nest without deadlock; two on one file in one process would not)."""
    try:
        handle = open(directory / name, "a+")
    except OSError:
        # A read-only dataset directory needs no lock: nobody can write its cache either.
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def resolve_dataset(name: str, root: Path, task: str) -> tuple[Path, dict, bool, dict]:
    """Find dataset ``name`` under ``root``: one largegraph wrote, else an official OGB one.

    Args:
        task: ``node`` or ``link``; a largegraph dataset of the other task is refused.

    Returns:
        (dataset directory, OGB meta_dict, is_official, largegraph.json contents or {}).

    Raises:
        DatasetError: unknown name, wrong task or missing files, with how to fix it.
    """
    if not root.is_dir():
        raise DatasetError(f"data.root {root} does not exist or is not a directory; create it or point data.root at your datasets")
    own = dataset_dir(root, name)
    if (own / META_FILE).exists():
        meta = read_meta(own)
        if meta.get("task") != task:
            raise DatasetError(f"{own} holds a {meta.get('task')} dataset, not a {_TASKS[task].kind} one")
        ogb_meta = dict(meta["ogb_meta"], dir_path=str(own))
        require_files(own, ogb_meta, name, "rewrite it with `largegraph data`", task)
        return own, ogb_meta, False, meta
    master = official_meta(task)
    if name in master:
        directory = official_dataset_dir(root, name)
        meta = dict(master[name])
        how = (f"this machine cannot download; fetch {meta['url']} elsewhere and unzip it into {root} "
               f"so that {own / RAW_DIR} exists")
        require_files(directory, meta, name, how, task)
        return directory, meta, True, {}
    known = ", ".join(master.columns)
    raise DatasetError(
        f"unknown dataset {name!r}: not an OGB {task} dataset ({known}) and no largegraph dataset at {own}; "
        f"create one with {_TASKS[task].how_to_make}"
    )


def read_with_ogb(task: str, name: str, directory: Path, meta: dict, official: bool):
    """Open a dataset with OGB's DGL loader for ``task`` and return ``(dataset, its split)``.

    Under the dataset's lock, with stdin closed (OGB must never prompt), and with OGB's failures
    turned into one DatasetError.
    """
    spec = _TASKS[task]
    dataset_cls = getattr(importlib.import_module(spec.package), spec.dataset_class)
    with dataset_lock(directory), _quiet_and_closed_stdin(), warnings.catch_warnings():
        # OGB wraps read-only numpy arrays; the tensors are copied right after, so harmless.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        # OGB's official split files are pickled numpy arrays, which torch 2.6+ refuses by default.
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*weights_only.*")
        try:
            if official:
                dataset = dataset_cls(name, root=str(directory.parent))
            else:
                dataset = dataset_cls(name, meta_dict=meta)
            split = getattr(dataset, spec.split_method)()
        except (EOFError, FileNotFoundError, RuntimeError, ValueError, KeyError, OSError) as exc:
            raise DatasetError(f"OGB could not read {name} from {directory}: {exc}") from None
    return dataset, split


def _labels_to_int(labels: torch.Tensor) -> torch.Tensor:
    labels = labels.reshape(labels.shape[0], -1)
    if labels.shape[1] != 1:
        raise DatasetError(f"labels have {labels.shape[1]} columns; only single-label classification is supported")
    labels = labels[:, 0]
    if labels.is_floating_point():
        # OGB keeps NaN for unlabelled nodes (ogbn-papers100M); -1 marks them for us.
        labels = torch.where(torch.isnan(labels), torch.full_like(labels, -1), labels)
    return labels.to(torch.int64)


def load_ogb_node_dataset(name: str, root: str | os.PathLike) -> GraphData:
    """Load a node dataset exactly as OGB stores it (no reverse edges or self-loops added yet).

    Args:
        name: an official OGB name (``ogbn-arxiv``) or a dataset largegraph wrote under ``root``.
        root: the directory holding dataset folders.

    Returns:
        GraphData with raw OGB graph, int64 labels (-1 = unlabelled) and the dataset's own split.

    Raises:
        DatasetError: unknown name, missing files, or malformed contents.
    """
    root = Path(root).expanduser()
    directory, meta, official, own_meta = resolve_dataset(name, root, "node")
    if meta["is hetero"] == "True":
        raise DatasetError(f"{name} is a heterogeneous graph; largegraph trains on homogeneous graphs")
    if int(meta["num tasks"]) != 1 or "multiclass" not in meta["task type"]:
        raise DatasetError(f"{name} is a {meta['task type']} task with {meta['num tasks']} targets; "
                           f"node classification here needs single-label multiclass data")
    dataset, split = read_with_ogb("node", name, directory, meta, official)
    graph, labels = dataset.graph[0], dataset.labels
    # A dataset without features (imported from a bare edge list) trains on a learnable node table.
    feat = graph.ndata.pop("feat", None)
    for key in list(graph.ndata.keys()):
        graph.ndata.pop(key)  # e.g. ogbn-arxiv's 'year': never used, never held
    if feat is not None:
        graph.ndata["feat"] = feat if feat.dtype == torch.float32 else feat.to(torch.float32)
    graph.ndata["label"] = _labels_to_int(labels)
    sparse_feat = None
    if own_meta.get("feature_storage") == "sparse":
        sparse_feat = _read_sparse_features(directory, own_meta, graph.num_nodes())
    return GraphData(
        name=name,
        graph=graph,
        num_classes=int(meta["num classes"]),
        split={k: torch.as_tensor(np.asarray(v), dtype=torch.int64) for k, v in split.items()},
        metric=meta["eval metric"],
        evaluator_name=name if official else "ogbn-arxiv",
        info={"dir": str(directory), "official": official,
              "inverse_edges_added_by_ogb": meta["add_inverse_edge"] == "True"},
        sparse_feat=sparse_feat,
        undirected=meta["add_inverse_edge"] == "True",
    )


def _read_sparse_features(directory: Path, own_meta: dict, num_nodes: int) -> SparseFeatures:
    """The CSR features stored beside OGB's files (OGB's meta says the dataset has no node attributes)."""
    path = directory / RAW_DIR / NODE_FEAT_SPARSE
    matrix = read_npz(path)
    expected = (num_nodes, int(own_meta.get("feat_dim", matrix.shape[1])))
    if matrix.shape != expected:
        raise DatasetError(f"sparse features file {path} has shape {matrix.shape}, but the dataset has "
                           f"{num_nodes} nodes and {expected[1]} feature columns; rewrite the dataset")
    return SparseFeatures.from_scipy(matrix)
