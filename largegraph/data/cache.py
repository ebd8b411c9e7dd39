"""The processed-graph cache: a prepared dataset as plain arrays that every process maps.

The first load of a dataset goes through OGB's own loader (official datasets and ours alike), is
validated and prepared as the job's ``data`` settings ask (:func:`largegraph.data.prepare.prepare`),
and is then written beside the dataset as ``processed/largegraph-<key>/``:

==============  ==================================================================================
``indptr.npy``  int64 ``(N+1,)``: CSC offsets of the message-passing graph (reverse edges added)
``indices.npy`` int64 ``(E,)``: source node of every in-edge, grouped by destination
``eids.npy``    link data only: each CSC position's edge id (the reverse-edge pairing relies on ids;
                node data renumbers edges in CSC order and needs no such array)
``feat.npy``    ``(N, D)`` node features in ``data.feature_dtype`` (bfloat16 stored as int16 bits)
``feat_indptr.npy``, ``feat_indices.npy``, ``feat_values.npy``  sparse features instead of ``feat.npy``
                (CSR: int64 row offsets, int32 columns, values in ``data.feature_dtype``;
                :mod:`largegraph.data.sparse`)
``label.npy``   node data: int64 labels, -1 for unlabelled nodes
``split.pt``    the split, as the loaders return it
``manifest.json`` written last: shapes, dtypes and bytes of every array, the dataset's metadata
==============  ==================================================================================

``<key>`` hashes the raw files (names, sizes, modification times), the preparation settings and the
cache format, so editing a dataset or a setting makes a new cache instead of reusing a stale one. A
cache is trusted only if its manifest exists and every array has the manifest's shape, dtype and
file size; anything else (an interrupted build, a truncated file) is deleted and rebuilt. Builds are
serialised by a lock and written into a temporary folder renamed into place, so two processes
loading at once produce one valid cache.

Every later load maps the arrays (``numpy`` memory maps, copy-on-write): the topology and, with
``data.features=mmap``, the features are pages of the kernel's page cache that every process on the
machine shares, and features larger than RAM are read on demand. DGL builds its graph on the mapped
CSC arrays without copying them (``dgl.graph(('csc', ...))`` wraps them through DLPack), and node
graphs are restricted to that one format so that neither the trainer nor DGL's sampling workers
materialise a private COO or CSR copy.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Callable

import dgl
import numpy as np
import torch

from largegraph.config import DataConfig
from largegraph.data.graph import GraphData, Storage
from largegraph.data.dataset_format import (GRAPH_CACHE_DIR, GRAPH_CACHE_LOCK, GRAPH_CACHE_MANIFEST, GRAPH_CACHE_PREFIX,
                                    LOCK_FILE)
from largegraph.data.link import LinkData
from largegraph.data.ogb import dataset_lock
from largegraph.data.sparse import SparseFeatures
from largegraph.core.errors import DatasetError
from largegraph.core.fsutil import TMP_MARK, atomic_write_text, fsync_dir, write_synced
from largegraph.core.madvise import advise_random

FORMAT = 1
SPLIT_FILE = "split.pt"
FEATURE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Settings that change what the cache holds; others (features mode, hot-row cache) only change how
# it is read.
_PREP_KEYS = ("add_reverse_edges", "self_loops", "feature_norm", "feature_dtype")
_CACHE_ENV = "LARGEGRAPH_CACHE_DIR"


# ------------------------------------------------------------------------------------------- keys
def source_fingerprint(directory: Path) -> str:
    """Hash of a dataset's files (relative path, size, modification time), caches and locks aside."""
    entries = []
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if rel.parts[0] == GRAPH_CACHE_DIR or path.name in (LOCK_FILE, GRAPH_CACHE_LOCK) or not path.is_file():
            continue
        stat = path.stat()
        entries.append([str(rel), stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]


def _prep(cfg: DataConfig) -> dict:
    """The settings that change what the cache holds, in :data:`_PREP_KEYS` order."""
    values = cfg.model_dump(include=set(_PREP_KEYS))
    return {k: values[k] for k in _PREP_KEYS}


def cache_key(source: str, task: str, cfg: DataConfig) -> str:
    """The cache folder's key: the raw files' fingerprint, the task and the preparation settings."""
    options = {"format": FORMAT, "source": source, "task": task, **_prep(cfg)}
    if cfg.sparse_features != "keep":
        # only when set, so that every cache built before the setting existed keeps its key
        options["sparse_features"] = cfg.sparse_features
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:16]


def cache_parent(directory: Path) -> Path:
    """Where a dataset's caches live: ``<dataset>/processed/``, or for a dataset directory this user
    cannot write (a read-only mount) ``$LARGEGRAPH_CACHE_DIR`` or ``~/.cache/largegraph``, in a
    folder named after the dataset's absolute path."""
    beside = directory / GRAPH_CACHE_DIR
    if os.access(beside if beside.is_dir() else directory, os.W_OK):
        return beside
    base = Path(os.environ.get(_CACHE_ENV) or Path.home() / ".cache" / "largegraph").expanduser()
    tag = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:12]
    return base / f"{directory.name}-{tag}"


# ------------------------------------------------------------------------------------------ reading
def read_manifest(path: Path) -> dict | None:
    """A cache folder's manifest if the folder is complete and every array matches it, else None."""
    try:
        manifest = json.loads((path / GRAPH_CACHE_MANIFEST).read_text())
        if manifest.get("format") != FORMAT or manifest.get("key") != path.name.removeprefix(GRAPH_CACHE_PREFIX):
            return None
        for name, spec in manifest["arrays"].items():
            file = path / f"{name}.npy"
            if file.stat().st_size != spec["file_bytes"]:
                return None
            arr = np.load(file, mmap_mode="r")
            if list(arr.shape) != spec["shape"] or str(arr.dtype) != spec["dtype"]:
                return None
        if not (path / SPLIT_FILE).is_file():
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return manifest


def map_array(path: Path, name: str) -> torch.Tensor:
    """Map ``<name>.npy`` copy-on-write (shared page-cache pages; a stray write stays private)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.load(path / f"{name}.npy", mmap_mode="c"))


def read_array(path: Path, name: str) -> torch.Tensor:
    """Read ``<name>.npy`` into this process's own memory."""
    return torch.from_numpy(np.load(path / f"{name}.npy"))


def as_feature_dtype(arr: torch.Tensor, dtype: str) -> torch.Tensor:
    """Undo the bfloat16-as-int16 storage (a view: no copy)."""
    return arr.view(torch.bfloat16) if dtype == "bfloat16" else arr


def open_graph(path: Path, manifest: dict) -> dgl.DGLGraph:
    """The message-passing graph over the mapped CSC arrays (no copy of the edges)."""
    indptr, indices = map_array(path, "indptr"), map_array(path, "indices")
    link = manifest["task"] == "link"
    eids = map_array(path, "eids") if link else torch.empty(0, dtype=torch.int64)
    graph = dgl.graph(("csc", (indptr, indices, eids)), num_nodes=manifest["num_nodes"])
    # Node tasks sample in-edges only: one format means DGL never builds a private COO or CSR
    # (its DataLoader materialises every allowed format before starting worker processes). Link
    # tasks look edges up by id (find_edges), so DGL builds what it needs from the mapped CSC.
    return graph if link else graph.formats("csc")


def open_cached(path: Path, manifest: dict, features: str) -> GraphData | LinkData:
    """A dataset from its cache folder; ``features`` is the resolved mode, ``memory`` or ``mmap``."""
    graph = open_graph(path, manifest)
    if "feat" in manifest["arrays"]:
        if features == "memory":
            raw = read_array(path, "feat")
        else:
            raw = map_array(path, "feat")
            advise_random(raw)
        graph.ndata["feat"] = as_feature_dtype(raw, manifest["feature_dtype"])
    sparse = _open_sparse(path, manifest, features) if "feat_indptr" in manifest["arrays"] else None
    split = torch.load(path / SPLIT_FILE, weights_only=True)
    info = {**manifest["info"], "cache": str(path), "features": features}  # provenance, as the fields say
    opened = {"name": manifest["name"], "graph": graph, "split": split, "info": info,
              "storage": Storage(features, str(path))}
    if manifest["task"] == "link":
        # the manifest records the link data's directedness in its provenance (the format predates the field)
        return LinkData(num_nodes=manifest["num_nodes"], undirected=bool(manifest["info"].get("undirected", True)),
                        **opened, **manifest["link"])
    graph.ndata["label"] = map_array(path, "label")
    return GraphData(sparse_feat=sparse, **opened, **manifest["node"])


_SPARSE_ARRAYS = ("feat_indptr", "feat_indices", "feat_values")


def _open_sparse(path: Path, manifest: dict, features: str) -> SparseFeatures:
    """Sparse features from the cache, read or mapped as ``features`` says (as dense ones are)."""
    if features == "memory":
        indptr, indices, values = (read_array(path, name) for name in _SPARSE_ARRAYS)
    else:
        indptr, indices, values = (map_array(path, name) for name in _SPARSE_ARRAYS)
        advise_random(indices)
        advise_random(values)
    return SparseFeatures(indptr, indices, as_feature_dtype(values, manifest["feature_dtype"]),
                          manifest["sparse_features"]["num_cols"])


# ------------------------------------------------------------------------------------------ writing
def _save(folder: Path, name: str, arr: torch.Tensor, arrays: dict) -> None:
    data = arr.contiguous().numpy()
    write_synced(folder / f"{name}.npy", lambda handle: np.save(handle, data))
    arrays[name] = {"shape": list(data.shape), "dtype": str(data.dtype),
                    "file_bytes": (folder / f"{name}.npy").stat().st_size}


def _feature_array(feat: torch.Tensor, dtype: str) -> torch.Tensor:
    feat = feat.to(FEATURE_DTYPES[dtype])
    return feat.view(torch.int16) if dtype == "bfloat16" else feat


def write_cache(folder: Path, data: GraphData | LinkData, key: str, source: str, cfg: DataConfig, *,
                consume: bool = False) -> dict:
    """Write prepared ``data`` as the arrays of cache folder ``folder`` (manifest last); return the manifest.

    With ``consume`` (the build, which drops ``data`` afterwards) the node data is taken out of
    ``data.graph`` once written, so that the features (980 MB at ogbn-products scale) are no longer
    held while DGL builds the CSC beside the graph's COO, the first load's largest moment.
    """
    folder.mkdir(parents=True)
    link = isinstance(data, LinkData)
    num_nodes, num_edges = int(data.graph.num_nodes()), int(data.graph.num_edges())
    arrays: dict = {}
    if "feat" in data.graph.ndata:
        _save(folder, "feat", _feature_array(data.graph.ndata["feat"], cfg.feature_dtype), arrays)
    sparse = data.sparse_feat
    if sparse is not None:
        _save(folder, "feat_indptr", sparse.indptr, arrays)
        _save(folder, "feat_indices", sparse.indices, arrays)
        _save(folder, "feat_values", _feature_array(sparse.values, cfg.feature_dtype), arrays)
    if not link:
        _save(folder, "label", data.graph.ndata["label"], arrays)
    if consume:
        data.graph.ndata.clear()
    indptr, indices, eids = data.graph.adj_tensors("csc")
    _save(folder, "indptr", indptr, arrays)
    _save(folder, "indices", indices, arrays)
    if link:
        _save(folder, "eids", eids, arrays)
    del indptr, indices, eids
    write_synced(folder / SPLIT_FILE, lambda handle: torch.save(data.split, handle))
    manifest = {
        "format": FORMAT, "key": key, "source": source, "task": "link" if link else "node", "name": data.name,
        "num_nodes": num_nodes, "num_edges": num_edges,
        "feature_dtype": cfg.feature_dtype, "prep": _prep(cfg),
        "arrays": arrays, "info": json.loads(json.dumps(data.info, default=str)), "created": time.time(),
    }
    if sparse is not None:
        manifest["sparse_features"] = {"num_cols": sparse.num_cols, "nnz": sparse.nnz}
    if link:
        manifest["link"] = {"split_style": data.split_style, "metric": data.metric,
                            "evaluator_name": data.evaluator_name}
    else:
        manifest["node"] = {"num_classes": data.num_classes, "metric": data.metric,
                            "evaluator_name": data.evaluator_name}
    atomic_write_text(folder / GRAPH_CACHE_MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def _remove_obsolete(parent: Path, source: str, keep: Path) -> None:
    """Delete interrupted builds and caches of an older version of the raw files; caches of the same
    files with other settings stay (another job may use them)."""
    for folder in parent.glob(f"{GRAPH_CACHE_PREFIX}*"):
        if folder == keep or not folder.is_dir():
            continue
        manifest = read_manifest(folder)
        if TMP_MARK in folder.name or manifest is None or manifest.get("source") != source:
            shutil.rmtree(folder, ignore_errors=True)


def cache_folder(directory: Path, task: str, cfg: DataConfig) -> Path:
    """The folder that holds (or will hold) ``directory``'s cache for these settings."""
    return cache_parent(directory) / f"{GRAPH_CACHE_PREFIX}{cache_key(source_fingerprint(directory), task, cfg)}"


def ensure_cache(directory: Path, task: str, cfg: DataConfig,
                 build: Callable[[], GraphData | LinkData], write: Callable[..., dict] | None = None,
                 ) -> tuple[Path, dict, bool]:
    """The valid cache folder of ``directory`` for ``task`` and ``cfg``, built from ``build()`` (OGB's
    load, validated and prepared) when missing, stale or damaged, and written by ``write`` (arguments
    as :func:`write_cache`'s, which is the default; typed datasets pass their own writer).

    Returns:
        (cache folder, its manifest, whether this call built it).

    Raises:
        DatasetError: the cache cannot be written (disk full, permissions), saying where.
    """
    source = source_fingerprint(directory)
    parent = cache_parent(directory)
    folder = parent / f"{GRAPH_CACHE_PREFIX}{cache_key(source, task, cfg)}"
    manifest = read_manifest(folder)
    if manifest is not None:
        return folder, manifest, False
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create the processed cache folder {parent}: {exc.strerror}; "
                           f"set {_CACHE_ENV} to a writable directory") from None
    with dataset_lock(parent, GRAPH_CACHE_LOCK):
        manifest = read_manifest(folder)  # another process may have built it while we waited
        if manifest is not None:
            return folder, manifest, False
        _remove_obsolete(parent, source, keep=folder)
        shutil.rmtree(folder, ignore_errors=True)
        manifest = _build(folder, build, cfg, source, write or write_cache)
    return folder, manifest, True


def _build(folder: Path, build: Callable[[], GraphData | LinkData], cfg: DataConfig, source: str,
           write: Callable[..., dict]) -> dict:
    data = build()
    tmp = folder.with_name(f"{folder.name}{TMP_MARK}{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        manifest = write(tmp, data, folder.name.removeprefix(GRAPH_CACHE_PREFIX), source, cfg, consume=True)
        os.rename(tmp, folder)
        fsync_dir(folder.parent)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetError(f"cannot write the processed cache {folder}: {exc.strerror or exc}; free disk space "
                           f"or set {_CACHE_ENV} to a writable directory") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
