"""Node ids of imported files: the universe of original ids numbered 0..N-1, edges and feature rows
put in that numbering.

Node ids in the files are arbitrary (integers or strings). Every id seen in the edges, features or labels
becomes a node; nodes are numbered in sorted order of their original id (numeric order when every id is
an integer).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from largegraph.data.input_files import POSITIONAL_FORMATS, FeatureFile, first_row
from largegraph.core.errors import DatasetError

_INT_PATTERN = r"[+-]?\d+"


def is_int(values: np.ndarray) -> np.ndarray:
    return pd.Series(values, dtype=str).str.fullmatch(_INT_PATTERN).to_numpy(dtype=bool)


def all_integers(values: np.ndarray) -> bool:
    return bool(is_int(values).all())


def to_int(values: np.ndarray, where: str) -> np.ndarray:
    try:
        return np.array([int(v) for v in values], dtype=np.int64)
    except OverflowError:
        raise DatasetError(f"{where}: an integer does not fit in 64 bits; use smaller ids or string ids") from None


def first_duplicate(values: np.ndarray) -> object | None:
    dup = pd.Series(values).duplicated().to_numpy()
    return values[np.flatnonzero(dup)[0]] if dup.any() else None


class NodeIds:
    """The sorted universe of original ids and the lookup from original id to node index."""

    def __init__(self, raw_ids: list[np.ndarray], integer: bool):
        self.integer = integer
        if integer:
            self.ids = np.unique(np.concatenate([to_int(a, "node ids") for a in raw_ids]))
        else:
            self.ids = np.unique(np.concatenate(raw_ids).astype(str)).astype(object)
        self._index = pd.Index(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def canonical(self, raw: np.ndarray) -> np.ndarray:
        """Original ids as the universe holds them ("007" and "7" are one node when all ids are integers)."""
        return to_int(raw, "node ids") if self.integer else np.asarray(raw, dtype=object)

    def lookup(self, raw: np.ndarray) -> np.ndarray:
        """Node index of each original id, -1 where unknown."""
        if self.integer:
            known = is_int(raw)
            out = np.full(len(raw), -1, dtype=np.int64)
            out[known] = self._index.get_indexer(to_int(raw[known], "node ids"))
            return out
        return self._index.get_indexer(np.asarray(raw, dtype=object)).astype(np.int64)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"node_idx": np.arange(len(self.ids), dtype=np.int64), "id": self.ids})


def build_edges(nodes: NodeIds, src: np.ndarray, dst: np.ndarray, directed: bool,
                times: np.ndarray | None = None) -> tuple[np.ndarray, dict, np.ndarray | None]:
    """Edges as sorted unique ``(E, 2)`` node-index pairs without self-loops, what was dropped, and
    each edge's earliest timestamp (when ``times`` are given)."""
    u, v = nodes.lookup(src), nodes.lookup(dst)
    loops = u == v
    u, v = u[~loops], v[~loops]
    if not directed:
        u, v = np.minimum(u, v), np.maximum(u, v)  # an undirected edge once, as (smaller, larger)
    # One int64 key per pair: a 1-d unique is far faster than np.unique(axis=0) on big edge lists.
    n = len(nodes)
    keys = u * n + v
    first_time = None
    if times is None:
        keys = np.unique(keys)
    else:
        # Sorted by key, then time: the first row of each key is the edge's first appearance.
        order = np.lexsort((times[~loops], keys))
        keys, first = np.unique(keys[order], return_index=True)
        first_time = times[~loops][order[first]]
    stats = {"edge_rows": int(len(src)), "self_loops_dropped": int(loops.sum()),
             "duplicate_edges_dropped": int(len(u) - len(keys))}
    return np.stack([keys // n, keys % n], axis=1), stats, first_time


def node_universe(src: np.ndarray, dst: np.ndarray, other_ids: list[np.ndarray], feats: FeatureFile | None,
                  feat_path: Path | None) -> NodeIds:
    """Every node the files name: edge endpoints, ``other_ids`` (labelled nodes) and feature rows."""
    raw_ids = [src, dst, *other_ids] + ([feats.ids] if feats is not None and feats.ids is not None else [])
    integer = all(all_integers(a) for a in raw_ids)
    if feats is not None and feats.fmt in POSITIONAL_FORMATS and integer:
        raw_ids.append(np.arange(feats.matrix.shape[0]).astype(str).astype(object))  # every row is a node
    nodes = NodeIds(raw_ids, integer)
    if feats is not None and feats.fmt in POSITIONAL_FORMATS:
        _check_npy_ids(nodes, feats.matrix.shape[0], feat_path)
    return nodes


def _check_npy_ids(nodes: NodeIds, rows: int, path: Path) -> None:
    kind = path.suffix.lower()
    if not nodes.integer:
        raise DatasetError(f"features file {path} is a {kind}, whose row i is the node with id i, but the node ids "
                           f"are not all integers; use a features CSV (or .json) with node ids instead")
    outside = (nodes.ids < 0) | (nodes.ids >= rows)
    if outside.any():
        raise DatasetError(f"node id {int(nodes.ids[outside][0])} has no row in features file {path} "
                           f"({rows} rows, so ids must lie in 0..{rows - 1}); row i of a {kind} holds node id i")


def feature_matrix(nodes: NodeIds, feats: FeatureFile, path: Path, sparse: bool = False):
    """The ``(N, D)`` features in node order: a float32 array, or with ``sparse`` a SciPy CSR matrix.

    Raises:
        DatasetError: a node without a row, a row listed twice, or NaN/inf values.
    """
    if feats.sparse or sparse:
        return _sparse_feature_matrix(nodes, feats, path, sparse)
    if feats.fmt == "npy":
        # Every id is an integer in [0, rows) (checked before), so the universe is exactly 0..rows-1.
        matrix = np.asarray(feats.matrix, dtype=np.float32)
    else:
        matrix = np.asarray(feats.matrix, dtype=np.float32)[_node_order(nodes, feats, path)]
    _check_finite(~np.isfinite(matrix).all(axis=1), nodes, path)
    return matrix


def _node_order(nodes: NodeIds, feats: FeatureFile, path: Path) -> np.ndarray:
    """Row of the features file holding each node (0..N-1), for files with id columns."""
    dup = first_duplicate(nodes.canonical(feats.ids))
    if dup is not None:
        raise DatasetError(f"features file {path} lists node {dup!r} more than once; keep one row per node")
    idx = nodes.lookup(feats.ids)
    row_of = np.full(len(nodes), -1, dtype=np.int64)
    row_of[idx] = np.arange(len(idx))
    if (row_of < 0).any():
        missing = np.flatnonzero(row_of < 0)
        raise DatasetError(f"{len(missing)} node(s) have no row in features file {path} (e.g. id "
                           f"{nodes.ids[missing[0]]!r}); add feature rows for them or drop them from the "
                           f"edges and labels")
    return row_of


def _sparse_feature_matrix(nodes: NodeIds, feats: FeatureFile, path: Path, sparse: bool):
    import scipy.sparse

    matrix = feats.matrix if feats.sparse else scipy.sparse.csr_matrix(np.asarray(feats.matrix, dtype=np.float32))
    if feats.fmt not in POSITIONAL_FORMATS:
        matrix = matrix[_node_order(nodes, feats, path)]
    matrix = matrix.astype(np.float32).tocsr()
    if not np.isfinite(matrix.data).all():
        rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        bad = np.zeros(matrix.shape[0], dtype=bool)
        bad[rows[~np.isfinite(matrix.data)]] = True
        _check_finite(bad, nodes, path)
    return matrix if sparse else matrix.toarray()


def _check_finite(bad_rows: np.ndarray, nodes: NodeIds, path: Path) -> None:
    first = first_row(bad_rows)
    if first is not None:
        raise DatasetError(f"features file {path}: {int(bad_rows.sum())} node(s) have NaN, inf or empty feature values "
                           f"(e.g. id {nodes.ids[first]!r}); clean or impute them before importing")
