"""What a dataset costs in memory, what this machine (or container) has, and the refusal when a job
plainly cannot fit: the figures behind ``largegraph data inspect`` and the check before a load.

Figures come from the processed cache's manifest when one exists (exact: the arrays' bytes), and
otherwise from the raw files' headers (node and edge counts, feature width), without parsing them.
"""
from __future__ import annotations

import gzip
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from largegraph.config import DataConfig
from largegraph.data.dataset_format import (GRAPH_NPZ, NODE_FEAT_CSV, NUM_EDGES_CSV, NUM_NODES_CSV, RAW_DIR, read_meta,
                                    META_FILE)
from largegraph.core.errors import DatasetError, ResourceError
from largegraph.core.memory import available_memory

_INT64 = 8
_VALUE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
GIB = 1024 ** 3


@dataclass(frozen=True)
class Footprint:
    """The bytes a prepared dataset occupies, by part.

    Attributes:
        num_nodes, num_edges: of the message-passing graph (reverse edges included).
        feat_dim: feature width (0: none).
        topology: CSC offsets and indices (and edge ids for link data).
        features: the feature matrix as stored.
        labels: node labels.
        build_peak: what the first load (OGB's parse, preparation, the cache write) holds at once.
        exact: figures from a built cache rather than estimated from the raw files.
        sparse: the features are kept sparse (CSR): ``features`` counts their three arrays.
    """

    num_nodes: int
    num_edges: int
    feat_dim: int
    topology: int
    features: int
    labels: int
    build_peak: int
    exact: bool
    sparse: bool = False

    @property
    def shared(self) -> int:
        """Bytes every process maps from the cache (one copy per machine)."""
        return self.topology + self.labels

    def private(self, features_mode: str) -> int:
        """Bytes each process holds on its own: the features when read into memory."""
        return self.features if features_mode == "memory" else 0

    def resident(self, features_mode: str, local_workers: int) -> int:
        """What must fit in memory on this machine for training to run without thrashing."""
        return self.shared + self.private(features_mode) * local_workers


def from_manifest(manifest: dict) -> Footprint:
    """Exact figures of a built cache."""
    arrays = manifest["arrays"]

    def size(*names: str) -> int:
        return sum(int(np.prod(arrays[n]["shape"])) * np.dtype(arrays[n]["dtype"]).itemsize
                   for n in names if n in arrays)

    sparse = manifest.get("sparse_features")
    feat_dim = arrays["feat"]["shape"][1] if "feat" in arrays else (sparse["num_cols"] if sparse else 0)
    topology = size("indptr", "indices", "eids")
    features = size("feat", "feat_indptr", "feat_indices", "feat_values")
    float32_features = (sparse["nnz"] * 12 if sparse else manifest["num_nodes"] * feat_dim * 4)
    return Footprint(manifest["num_nodes"], manifest["num_edges"], feat_dim, topology, features, size("label"),
                     _build_peak(manifest["num_edges"], float32_features), exact=True, sparse=bool(sparse))


def _build_peak(num_edges: int, float32_features: int) -> int:
    # OGB's parsed edges, the graph with reverse edges, DGL's CSC (indices and ids) and the
    # float32 features can all be alive at once during the first load.
    return 4 * num_edges * 2 * _INT64 + float32_features


def estimate(directory: Path, task: str, cfg: DataConfig) -> Footprint:
    """Figures estimated from the raw files of a dataset that has no cache yet."""
    nodes, raw_edges, feat_dim = _raw_counts(directory)
    meta = read_meta(directory) if (directory / META_FILE).exists() else {}
    ogb_meta = meta.get("ogb_meta", {})
    both_ways = ogb_meta.get("add_inverse_edge") == "True"
    reverse = task == "node" and cfg.add_reverse_edges != "false" and not both_ways
    edges = raw_edges * (2 if reverse or both_ways else 1) + (nodes if cfg.self_loops else 0)
    topology = (nodes + 1) * _INT64 + edges * _INT64 * (2 if task == "link" else 1)
    features = nodes * feat_dim * _VALUE_BYTES[cfg.feature_dtype]
    labels = nodes * _INT64 if task == "node" else 0
    if meta.get("feature_storage") == "sparse":
        feat_dim, nnz = int(meta["feat_dim"]), int(meta["feat_nnz"])
        # the import's CSR arrays, as the loader holds them, plus the dense copy when densified
        loaded = (nodes + 1) * _INT64 + nnz * (4 + 4)
        if cfg.sparse_features == "keep":
            features = (nodes + 1) * _INT64 + nnz * (4 + _VALUE_BYTES[cfg.feature_dtype])
            return Footprint(nodes, edges, feat_dim, topology, features, labels, _build_peak(edges, 2 * loaded),
                             exact=False, sparse=True)
        features = nodes * feat_dim * _VALUE_BYTES[cfg.feature_dtype]
        return Footprint(nodes, edges, feat_dim, topology, features, labels,
                         _build_peak(edges, loaded + nodes * feat_dim * 4), exact=False)
    return Footprint(nodes, edges, feat_dim, topology, features, labels,
                     _build_peak(edges, nodes * feat_dim * 4), exact=False)


def _raw_counts(directory: Path) -> tuple[int, int, int]:
    """(nodes, stored edges, feature width) from the raw files' headers."""
    raw = directory / RAW_DIR
    if (raw / GRAPH_NPZ).exists():
        with zipfile.ZipFile(raw / GRAPH_NPZ) as npz:
            shapes = {name.removesuffix(".npy"): _npy_shape(npz, name) for name in npz.namelist()}
        nodes = int(np.load(raw / GRAPH_NPZ)["num_nodes_list"].sum())
        feat = shapes.get("node_feat")
        return nodes, shapes["edge_index"][1], feat[1] if feat else 0
    nodes = _first_int(raw / NUM_NODES_CSV)
    edges = _first_int(raw / NUM_EDGES_CSV)
    feat_dim = 0
    if (raw / NODE_FEAT_CSV).exists():
        with gzip.open(raw / NODE_FEAT_CSV, "rt") as handle:
            feat_dim = len(handle.readline().split(","))
    return nodes, edges, feat_dim


def _npy_shape(npz: zipfile.ZipFile, member: str) -> tuple[int, ...]:
    with npz.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        return np.lib.format._read_array_header(handle, version)[0]


def _first_int(path: Path) -> int:
    with gzip.open(path, "rt") as handle:
        return int(handle.readline().split(",")[0])


# ------------------------------------------------------------------------------------ the machine
def local_workers() -> int:
    """Training processes on this machine: torchrun's LOCAL_WORLD_SIZE, else 1."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


# ------------------------------------------------------------------------------------ decisions
# Mapped, a matrix is read from the page cache as fast as from private memory (the memory benchmark's
# mmap/memory epoch ratio), and the exact evaluation drops its pages after the first layer, which a
# private copy cannot: from this size on that lowers a job's peak by the whole matrix.
MAP_FROM_BYTES = 512 << 20


def features_mode(cfg: DataConfig, fp: Footprint, workers: int, available: int) -> str:
    """``data.features`` resolved: ``auto`` maps the features when several local workers would each
    read their own copy, when the matrix is large (``MAP_FROM_BYTES``), or when one copy would take
    over half the available memory."""
    if cfg.features != "auto":
        return cfg.features
    large = fp.features >= MAP_FROM_BYTES
    return "mmap" if workers > 1 or large or fp.features > available / 2 else "memory"


def check_fits(name: str, fp: Footprint, mode: str, workers: int, available: int, building: bool) -> None:
    """Refuse, in one line, a job this machine plainly cannot hold, before it is OOM-killed minutes in.

    Raises:
        ResourceError: what is needed, what is available, and the setting that would fit.
    """
    if building and fp.build_peak > available:
        raise ResourceError(
            f"the first load of {name} needs about {_gib(fp.build_peak)} (OGB's loader parses the raw files in "
            f"memory before largegraph caches them) but {_gib(available)} is available; build the cache once on a "
            f"machine with more memory (`largegraph data inspect` shows the figures), or free memory")
    need = fp.resident(mode, workers)
    if need <= available:
        return
    per_worker = f" ({workers} workers each reading {_gib(fp.features)} of features)" if fp.private(mode) and workers > 1 else ""
    hint = ("set data.features=mmap to share one mapped copy that may exceed RAM" if mode == "memory"
            else "the graph's topology must fit in memory; partition the graph or use a machine with more memory")
    raise ResourceError(f"{name} needs {_gib(need)} of memory{per_worker} but {_gib(available)} is available; {hint}")


def _gib(n: int) -> str:
    """Bytes for people: MiB below a GiB, GiB above."""
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / 2**20:.1f} MiB"


def describe(name: str, fp: Footprint, cfg: DataConfig, workers: int, available: int, cache: str) -> str:
    """The ``largegraph data inspect`` report."""
    mode = features_mode(cfg, fp, workers, available)
    lines = [
        f"dataset {name}: {fp.num_nodes:,} nodes, {fp.num_edges:,} message-passing edges, "
        f"{fp.feat_dim}-d {cfg.feature_dtype} {'sparse (CSR) ' if fp.sparse else ''}features "
        f"({'exact, from the cache' if fp.exact else 'estimated from the raw files'})",
        f"cache: {cache}",
        f"topology (CSC, mapped, shared by all local workers): {_gib(fp.topology)}",
        f"features ({cfg.feature_dtype}{', sparse CSR: row offsets, column ids, values' if fp.sparse else ''}): "
        f"{_gib(fp.features)}",
        f"labels (mapped, shared): {_gib(fp.labels)}",
        f"features mode: data.features={cfg.features} -> {mode} with {workers} local worker(s)",
        f"per worker, private: {_gib(fp.private(mode))}; per machine, shared: {_gib(fp.shared + (0 if mode == 'memory' else fp.features))}",
        f"must fit in memory: {_gib(fp.resident(mode, workers))} of {_gib(available)} available",
    ]
    if cfg.feature_cache_mb and mode == "mmap":
        lines.append(f"hot-row feature cache: {cfg.feature_cache_mb} MiB per worker")
    if not fp.exact:
        lines.append(f"first load (builds the cache): about {_gib(fp.build_peak)} at its peak")
    return "\n".join(lines)


def as_json(fp: Footprint) -> str:
    """The figures as one JSON object (for scripts and tests)."""
    return json.dumps(fp.__dict__, sort_keys=True)


def inspect(directory: str | os.PathLike, cfg_overrides: dict, workers: int, as_json_output: bool = False) -> str:
    """``largegraph data inspect DIR``: what loading the dataset in ``DIR`` will cost.

    Raises:
        DatasetError: ``DIR`` is not a dataset directory.
    """
    from largegraph.data.cache import cache_folder, read_manifest
    from largegraph.data.ogb import resolve_dataset

    path = Path(directory).expanduser()
    if not path.is_dir():
        raise DatasetError(f"{path} is not a directory; give a dataset folder such as data/ogbn_products")
    meta = read_meta(path) if (path / META_FILE).exists() else {}
    name = meta.get("name") or path.name.removesuffix("_dgl").replace("_", "-")
    task = meta.get("task") or ("link" if name.startswith("ogbl-") else "node")
    cfg = DataConfig(name=name, root=str(path.parent), **cfg_overrides)
    resolved = resolve_dataset(name, path.parent, task)[0]
    folder = cache_folder(resolved, task, cfg)
    manifest = read_manifest(folder)
    fp = from_manifest(manifest) if manifest else estimate(resolved, task, cfg)
    if as_json_output:
        return as_json(fp)
    cache = str(folder) if manifest else f"not built yet (the first load writes {folder})"
    return describe(name, fp, cfg, workers, available_memory(), cache)
