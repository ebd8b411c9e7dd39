"""Bring your own graph: import a node-classification dataset from plain files.

``largegraph data import`` reads an edge list (CSV), node features (CSV, ``.npy``, a SNAP/MUSAE-style
``.json`` of active feature indices or a SciPy sparse ``.npz``), node labels (CSV) and a split (seeded ratios or three id lists), and
writes them through :func:`largegraph.data.ogb_layout.write_node_dataset`, so the result loads with OGB's
own loader like any other dataset.

Node ids in the files are arbitrary (integers or strings). Every id seen in the edges, features or labels
becomes a node; nodes are numbered 0..N-1 in sorted order of their original id (numeric order when every
id is an integer) and ``mapping/nodeidx2id.csv.gz`` keeps the original ids. Every problem with the input
files is reported as a one-line :class:`DatasetError` naming the file (and column or line) at fault.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from largegraph.data.layout import SPLITS
from largegraph.data.ogb_layout import write_node_dataset
from largegraph.core.errors import DatasetError

PathLike = str | os.PathLike
_INT_PATTERN = r"[+-]?\d+"
# Cells read as missing (NaN) in feature columns, so that they are reported rather than parsed as text.
_MISSING = ["", "nan", "NaN", "NAN", "NA", "N/A", "null", "NULL", "None"]


# --------------------------------------------------------------------------------------------- reading


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def require_file(path: PathLike, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"{what} file {path} does not exist (or is not a file); check the path")
    return path


def read_csv_table(path: Path, what: str, **kwargs) -> pd.DataFrame:
    """Read a CSV with a header row (as strings unless told otherwise); any parse problem becomes one
    DatasetError line."""
    kwargs = {"dtype": str, "keep_default_na": False, **kwargs}
    try:
        with warnings.catch_warnings():
            # Rows with more fields than the header: pandas would silently turn the extra leading fields
            # into an index (index_col=None) or drop them with a warning (index_col=False); refuse instead.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # utf-8-sig: a byte-order mark (Excel exports) must not become part of the first column's name.
            frame = pd.read_csv(path, skipinitialspace=True, encoding="utf-8-sig", index_col=False, **kwargs)
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{what} file {path} is empty; it needs a header row and one row per entry") from None
    except pd.errors.ParserWarning:
        raise DatasetError(f"cannot read {what} file {path} as CSV: a row has more fields than the header; "
                           f"fix the row or the header") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise DatasetError(f"cannot read {what} file {path} as CSV: {_one_line(exc)}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _require_column(frame: pd.DataFrame, col: str, path: Path, what: str, flag: str) -> None:
    if col not in frame.columns:
        columns = ", ".join(map(repr, frame.columns))
        raise DatasetError(f"{what} file {path} has no column {col!r} (columns: {columns}); "
                           f"rename the column or pass {flag}")


def id_column(frame: pd.DataFrame, col: str, path: Path, what: str, flag: str) -> np.ndarray:
    """Return a column of node ids as stripped strings; raise if it is missing or has empty cells."""
    _require_column(frame, col, path, what, flag)
    values = frame[col].fillna("").str.strip()
    empty = (values == "").to_numpy()
    if empty.any():
        line = int(np.flatnonzero(empty)[0]) + 2  # 1-based, after the header row
        raise DatasetError(f"{what} file {path}, line {line}: column {col!r} is empty; every row needs a node id")
    return values.to_numpy(dtype=object)


def _is_int(values: np.ndarray) -> np.ndarray:
    return pd.Series(values, dtype=str).str.fullmatch(_INT_PATTERN).to_numpy(dtype=bool)


def _all_integers(values: np.ndarray) -> bool:
    return bool(_is_int(values).all())


def _to_int(values: np.ndarray, where: str) -> np.ndarray:
    try:
        return np.array([int(v) for v in values], dtype=np.int64)
    except OverflowError:
        raise DatasetError(f"{where}: an integer does not fit in 64 bits; use smaller ids or string ids") from None


def _first_duplicate(values: np.ndarray) -> object | None:
    dup = pd.Series(values).duplicated().to_numpy()
    return values[np.flatnonzero(dup)[0]] if dup.any() else None


# ---------------------------------------------------------------------------------------------- inputs


@dataclass
class _Features:
    """Feature rows with their original (string) ids; ``ids`` is None for ``.npy``/``.npz``, whose row i is
    id i. ``matrix`` is a SciPy CSR matrix for the sparse formats (``.json``, ``.npz``)."""

    fmt: str
    ids: np.ndarray | None
    matrix: object

    @property
    def sparse(self) -> bool:
        return self.fmt in SPARSE_FORMATS


# Feature files that hold sparse matrices: stored sparse unless --feature-storage dense.
SPARSE_FORMATS = ("json", "npz")
# Feature files whose row i is the node with integer id i.
_POSITIONAL_FORMATS = ("npy", "npz")
FEATURE_STORAGE = ("auto", "dense", "sparse")


def read_edges(path: Path, src_col: str | None, dst_col: str | None,
               time_col: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(source ids, destination ids, float64 timestamps or None) of an edges CSV."""
    frame = read_csv_table(path, "edges")
    if (src_col is None or dst_col is None) and frame.shape[1] < 2:
        raise DatasetError(f"edges file {path} has {frame.shape[1]} column; it needs a source and a destination "
                           f"column (comma-separated, with a header row)")
    src_col = src_col or frame.columns[0]
    dst_col = dst_col or frame.columns[1]
    src = id_column(frame, src_col, path, "edges", "--src-col")
    dst = id_column(frame, dst_col, path, "edges", "--dst-col")
    if len(frame) == 0:
        raise DatasetError(f"edges file {path} has a header but no edges; add one '{src_col},{dst_col}' row per edge")
    return src, dst, (_time_column(frame, time_col, path) if time_col else None)


def _time_column(frame: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    _require_column(frame, col, path, "edges", "--time-col")
    text = frame[col].fillna("").str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"edges file {path}, line {row + 2}: timestamp column {col!r} has non-numeric value "
                           f"{text.iloc[row]!r}; timestamps must be numbers (e.g. Unix seconds or years)")
    return values


def read_features(path: Path, id_col: str, label_col: str) -> _Features:
    name = path.name.lower()
    if name.endswith(".npy"):
        return _read_features_npy(path)
    if name.endswith(".json"):
        return _read_features_json(path)
    if name.endswith(".npz"):
        return _read_features_npz(path)
    if name.endswith((".csv", ".csv.gz")):
        return _read_features_csv(path, id_col, label_col)
    raise DatasetError(f"features file {path}: unknown format; use a .csv (id + numeric columns), "
                       f".npy (row i = node id i), .npz (a scipy.sparse.save_npz matrix, row i = node id i) "
                       f"or .json (node id -> list of active feature indices)")


def _read_features_csv(path: Path, id_col: str, label_col: str) -> _Features:
    header = read_csv_table(path, "features", nrows=0)
    _require_column(header, id_col, path, "features", "--id-col")
    # A label column next to the features (one file for both) must never leak into the inputs.
    cols = [c for c in header.columns if c not in (id_col, label_col)]
    if not cols:
        raise DatasetError(f"features file {path} has no feature columns besides {id_col!r}; add numeric columns")
    # Ids stay exact strings; feature columns go through pandas' fast float parser.
    frame = read_csv_table(path, "features", dtype={id_col: str}, na_values={c: _MISSING for c in cols})
    ids = id_column(frame, id_col, path, "features", "--id-col")
    for col in cols:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            text = frame[col].astype(object)
            bad = pd.to_numeric(text, errors="coerce").isna().to_numpy() & text.notna().to_numpy()
            row = int(np.flatnonzero(bad)[0])
            raise DatasetError(f"features file {path}, line {row + 2}: column {col!r} has non-numeric value "
                               f"{text.iloc[row]!r}; features must be numbers")
    return _Features("csv", ids, frame[cols].to_numpy(dtype=np.float32))


def _read_features_npy(path: Path) -> _Features:
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetError(f"cannot read features file {path} as .npy: {_one_line(exc)}") from None
    if matrix.ndim != 2 or not (np.issubdtype(matrix.dtype, np.number) or matrix.dtype == bool):
        raise DatasetError(f"features file {path} holds a {matrix.ndim}-d {matrix.dtype} array; it must be a "
                           f"2-d numeric array of shape (number of ids, feature dim)")
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise DatasetError(f"features file {path} has shape {matrix.shape}; it holds no features")
    return _Features("npy", None, matrix)


def _read_features_json(path: Path) -> _Features:
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise DatasetError(f"cannot read features file {path} as JSON: {_one_line(exc)}") from None
    if not isinstance(data, dict) or not data:
        raise DatasetError(f"features file {path} must be a non-empty JSON object mapping node id -> "
                           f"list of active feature indices")
    for key, active in data.items():
        if not isinstance(active, list) or not all(type(i) is int and i >= 0 for i in active):
            raise DatasetError(f"features file {path}: node {key!r} maps to {str(active)[:60]}; each node id "
                               f"must map to a list of non-negative integer feature indices")
    width = max(max(active, default=-1) for active in data.values()) + 1
    if width == 0:
        raise DatasetError(f"features file {path} lists no active feature index for any node")
    import scipy.sparse

    ids = np.array([str(k).strip() for k in data], dtype=object)
    rows = np.repeat(np.arange(len(data)), [len(v) for v in data.values()])
    cols = np.fromiter((i for v in data.values() for i in v), dtype=np.int64, count=len(rows))
    matrix = scipy.sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(data), width))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0  # multi-hot: an index listed twice is still one active feature
    return _Features("json", ids, matrix)


def _read_features_npz(path: Path) -> _Features:
    from largegraph.data.sparse import read_npz

    matrix = read_npz(path, "features file")
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise DatasetError(f"features file {path} has shape {matrix.shape}; it holds no features")
    return _Features("npz", None, matrix)


def _read_labels(path: Path, id_col: str, label_col: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (string ids, string labels); an empty label cell means the node is unlabelled."""
    frame = read_csv_table(path, "labels")
    ids = id_column(frame, id_col, path, "labels", "--id-col")
    _require_column(frame, label_col, path, "labels", "--label-col")
    values = frame[label_col].str.strip().to_numpy(dtype=object)
    if not (values != "").any():
        raise DatasetError(f"labels file {path} labels no node (no rows, or column {label_col!r} is empty); "
                           f"node classification needs labelled nodes")
    return ids, values


def _read_split_files(split_dir: PathLike) -> dict[str, tuple[Path, np.ndarray, np.ndarray]]:
    """Return part -> (file, line numbers, ids) for the non-blank lines of train/valid/test.csv."""
    directory = Path(split_dir).expanduser()
    if not directory.is_dir():
        raise DatasetError(f"split directory {directory} does not exist; it must hold train.csv, valid.csv, test.csv")
    parts = {}
    for part in SPLITS:
        path = directory / f"{part}.csv"
        if not path.is_file():
            raise DatasetError(f"split file {path} is missing; the split directory needs train.csv, valid.csv "
                               f"and test.csv with one node id per line")
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"cannot read split file {path}: {_one_line(exc)}") from None
        entries = [(n, line.strip().strip('"').strip()) for n, line in enumerate(lines, 1)]
        entries = [(n, v) for n, v in entries if v]
        parts[part] = (path, np.array([n for n, _ in entries], dtype=np.int64),
                       np.array([v for _, v in entries], dtype=object))
    return parts


# -------------------------------------------------------------------------------------------- node ids


class NodeIds:
    """The sorted universe of original ids and the lookup from original id to node index."""

    def __init__(self, raw_ids: list[np.ndarray], integer: bool):
        self.integer = integer
        if integer:
            self.ids = np.unique(np.concatenate([_to_int(a, "node ids") for a in raw_ids]))
        else:
            self.ids = np.unique(np.concatenate(raw_ids).astype(str)).astype(object)
        self._index = pd.Index(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def canonical(self, raw: np.ndarray) -> np.ndarray:
        """Original ids as the universe holds them ("007" and "7" are one node when all ids are integers)."""
        return _to_int(raw, "node ids") if self.integer else np.asarray(raw, dtype=object)

    def lookup(self, raw: np.ndarray) -> np.ndarray:
        """Node index of each original id, -1 where unknown."""
        if self.integer:
            known = _is_int(raw)
            out = np.full(len(raw), -1, dtype=np.int64)
            out[known] = self._index.get_indexer(_to_int(raw[known], "node ids"))
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


def _check_npy_ids(nodes: NodeIds, rows: int, path: Path) -> None:
    kind = path.suffix.lower()
    if not nodes.integer:
        raise DatasetError(f"features file {path} is a {kind}, whose row i is the node with id i, but the node ids "
                           f"are not all integers; use a features CSV (or .json) with node ids instead")
    outside = (nodes.ids < 0) | (nodes.ids >= rows)
    if outside.any():
        raise DatasetError(f"node id {int(nodes.ids[outside][0])} has no row in features file {path} "
                           f"({rows} rows, so ids must lie in 0..{rows - 1}); row i of a {kind} holds node id i")


def feature_matrix(nodes: NodeIds, feats: _Features, path: Path, sparse: bool = False):
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
        dup = _first_duplicate(nodes.canonical(feats.ids))
        if dup is not None:
            raise DatasetError(f"features file {path} lists node {dup!r} more than once; keep one row per node")
        idx = nodes.lookup(feats.ids)
        have = np.zeros(len(nodes), dtype=bool)
        have[idx] = True
        if not have.all():
            missing = np.flatnonzero(~have)
            raise DatasetError(f"{len(missing)} node(s) have no row in features file {path} (e.g. id "
                               f"{nodes.ids[missing[0]]!r}); add feature rows for them or drop them from the "
                               f"edges and labels")
        matrix = np.empty((len(nodes), feats.matrix.shape[1]), dtype=np.float32)
        matrix[idx] = feats.matrix
    _check_finite(~np.isfinite(matrix).all(axis=1), nodes, path)
    return matrix


def _node_order(nodes: NodeIds, feats: _Features, path: Path) -> np.ndarray:
    """Row of the features file holding each node (0..N-1), for files with id columns."""
    dup = _first_duplicate(nodes.canonical(feats.ids))
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


def _sparse_feature_matrix(nodes: NodeIds, feats: _Features, path: Path, sparse: bool):
    import scipy.sparse

    matrix = feats.matrix if feats.sparse else scipy.sparse.csr_matrix(np.asarray(feats.matrix, dtype=np.float32))
    if feats.fmt not in _POSITIONAL_FORMATS:
        matrix = matrix[_node_order(nodes, feats, path)]
    matrix = matrix.astype(np.float32).tocsr()
    if not np.isfinite(matrix.data).all():
        rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        bad = np.zeros(matrix.shape[0], dtype=bool)
        bad[rows[~np.isfinite(matrix.data)]] = True
        _check_finite(bad, nodes, path)
    return matrix if sparse else matrix.toarray()


def _check_finite(bad_rows: np.ndarray, nodes: NodeIds, path: Path) -> None:
    if bad_rows.any():
        first = int(np.flatnonzero(bad_rows)[0])
        raise DatasetError(f"features file {path}: {int(bad_rows.sum())} node(s) have NaN, inf or empty feature values "
                           f"(e.g. id {nodes.ids[first]!r}); clean or impute them before importing")


def _encode_labels(nodes: NodeIds, ids: np.ndarray, values: np.ndarray,
                   path: Path) -> tuple[np.ndarray, int, pd.DataFrame | None]:
    """Return (labels with -1 for unlabelled, num_classes, labelidx2label table or None)."""
    dup = _first_duplicate(nodes.canonical(ids))
    if dup is not None:
        raise DatasetError(f"labels file {path} lists node {dup!r} more than once; keep one label per node")
    labelled = values != ""
    ids, values = ids[labelled], values[labelled]
    labels = np.full(len(nodes), -1, dtype=np.int64)
    idx = nodes.lookup(ids)
    if _all_integers(values):
        numbers = _to_int(values, f"labels file {path}")
        if numbers.min() >= 0:
            labels[idx] = numbers
            return labels, int(numbers.max()) + 1, None
        classes, codes = np.unique(numbers, return_inverse=True)
    else:
        classes, codes = np.unique(values.astype(str), return_inverse=True)
    labels[idx] = codes
    table = pd.DataFrame({"label_idx": np.arange(len(classes), dtype=np.int64), "label": classes})
    return labels, len(classes), table


# ---------------------------------------------------------------------------------------------- splits


def ratio_counts(ratios, n: int, what: str, hint: str) -> tuple[int, int, int]:
    """How many of ``n`` items (``what``) go to train, valid and test; raises unless all three get some."""
    try:
        ratios = tuple(float(r) for r in ratios)
    except (TypeError, ValueError):
        raise DatasetError(f"split ratios {ratios!r} must be three numbers, e.g. 0.8,0.1,0.1") from None
    if len(ratios) != 3 or not all(np.isfinite(ratios)) or min(ratios) <= 0 or sum(ratios) > 1 + 1e-6:
        raise DatasetError(f"split ratios {ratios} must be three positive numbers (train, valid, test) summing "
                           f"to at most 1, e.g. 0.8,0.1,0.1")
    n_train, n_valid = int(round(ratios[0] * n)), int(round(ratios[1] * n))
    n_test = n - n_train - n_valid if abs(sum(ratios) - 1) <= 1e-6 else int(round(ratios[2] * n))
    if min(n_train, n_valid, n_test) <= 0 or n_train + n_valid + n_test > n:
        raise DatasetError(f"split ratios {ratios} leave a split empty with {n} {what}; {hint}")
    return n_train, n_valid, n_test


def _split_by_ratios(labels: np.ndarray, ratios, seed: int) -> dict[str, np.ndarray]:
    labelled = np.flatnonzero(labels >= 0)
    n_train, n_valid, n_test = ratio_counts(ratios, len(labelled), "labelled node(s)",
                                            "label more nodes or change the ratios")
    order = np.random.default_rng(seed).permutation(labelled)
    parts = np.split(order[:n_train + n_valid + n_test], [n_train, n_train + n_valid])
    return {part: np.sort(ids) for part, ids in zip(SPLITS, parts)}


def _split_from_dir(nodes: NodeIds, labels: np.ndarray, split_dir: PathLike, id_col: str) -> dict[str, np.ndarray]:
    split = {}
    owner = np.full(len(nodes), -1, dtype=np.int64)  # which split file (0, 1, 2) listed each node
    for part_no, (part, (path, lines, raw)) in enumerate(_read_split_files(split_dir).items()):
        if len(raw) and raw[0] in ("id", id_col) and nodes.lookup(raw[:1])[0] < 0:
            lines, raw = lines[1:], raw[1:]  # optional header line
        if len(raw) == 0:
            raise DatasetError(f"split file {path} lists no node ids; every split needs at least one node")
        idx = nodes.lookup(raw)
        known = np.where(idx >= 0, idx, 0)
        checks = [
            (idx < 0, "unknown node id {v!r}; it appears in no edge, feature or label row"),
            (pd.Series(idx).duplicated().to_numpy(), "node {v!r} is listed twice"),
            ((idx >= 0) & (owner[known] >= 0), "node {v!r} is also in {other}.csv; train/valid/test must be disjoint"),
            ((idx >= 0) & (labels[known] < 0), "node {v!r} has no label; only labelled nodes can be in a split"),
        ]
        for bad, message in checks:
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                other = SPLITS[owner[known[k]]] if owner[known[k]] >= 0 else part
                raise DatasetError(f"split file {path}, line {lines[k]}: " + message.format(v=raw[k], other=other))
        owner[idx] = part_no
        split[part] = idx
    return split


# ------------------------------------------------------------------------------ shared by node and link


def check_dataset_name(name: str) -> None:
    if not name or "/" in name or os.sep in name or name.startswith("."):
        raise DatasetError(f"dataset name {name!r} must be a plain, non-empty name without '/' (e.g. my-graph)")


def node_universe(src: np.ndarray, dst: np.ndarray, other_ids: list[np.ndarray], feats: _Features | None,
                  feat_path: Path | None) -> NodeIds:
    """Every node the files name: edge endpoints, ``other_ids`` (labelled nodes) and feature rows."""
    raw_ids = [src, dst, *other_ids] + ([feats.ids] if feats is not None and feats.ids is not None else [])
    integer = all(_all_integers(a) for a in raw_ids)
    if feats is not None and feats.fmt in _POSITIONAL_FORMATS and integer:
        raw_ids.append(np.arange(feats.matrix.shape[0]).astype(str).astype(object))  # every row is a node
    nodes = NodeIds(raw_ids, integer)
    if feats is not None and feats.fmt in _POSITIONAL_FORMATS:
        _check_npy_ids(nodes, feats.matrix.shape[0], feat_path)
    return nodes


def with_structural(feat: np.ndarray | None, edges: np.ndarray, num_nodes: int, structural: str | None,
                    pe_dim: int, seed: int) -> tuple[np.ndarray | None, dict]:
    """The features to write (structural columns appended when asked) and the ``node_input`` record
    of the dataset's metadata: what the model's input is and how it was made."""
    kind = "features" if feat is not None else "embedding"
    record: dict = {"kind": kind}
    if structural:
        from largegraph.data.structural import WALKS, structural_features

        extra = structural_features(edges, num_nodes, structural, pe_dim, seed)
        if feat is None:
            feat = extra
        elif isinstance(feat, np.ndarray):
            feat = np.hstack([feat, extra])
        else:  # sparse features stay sparse; the few structural columns join them as stored entries
            import scipy.sparse

            feat = scipy.sparse.hstack([feat, scipy.sparse.csr_matrix(extra.astype(np.float32))], format="csr")
        record = {"kind": "features+structural" if kind == "features" else "structural",
                  "structural": structural, "pe_dim": int(pe_dim) if structural != "degree" else 0,
                  **({"walks": WALKS, "seed": int(seed)} if structural == "rw" else {})}
    return feat, record


def store_sparse(feature_storage: str, feats: _Features) -> bool:
    """Whether ``--feature-storage`` (``auto``/``dense``/``sparse``) stores these features sparse."""
    if feature_storage not in FEATURE_STORAGE:
        raise DatasetError(f"feature storage must be one of {', '.join(FEATURE_STORAGE)}, got {feature_storage!r}")
    return feats.sparse if feature_storage == "auto" else feature_storage == "sparse"


def describe_edges(stats: dict, directed: bool) -> str:
    """What happened to the edge rows, for the import's closing lines."""
    kept = stats["edge_rows"] - stats["self_loops_dropped"] - stats["duplicate_edges_dropped"]
    pairs = "ordered pairs" if directed else "unordered pairs (either direction)"
    return (f"{stats['edge_rows']} edge rows -> {kept} edges: {stats['duplicate_edges_dropped']} duplicate "
            f"{pairs} collapsed into one edge, {stats['self_loops_dropped']} self-loops dropped")


# ---------------------------------------------------------------------------------------------- import


def import_node_dataset(
    *,
    name: str,
    root: PathLike,
    edges: PathLike,
    features: PathLike | None = None,
    labels: PathLike | None = None,
    src_col: str | None = None,
    dst_col: str | None = None,
    id_col: str = "id",
    label_col: str = "label",
    split_ratios: tuple[float, float, float] | None = (0.8, 0.1, 0.1),
    split_dir: PathLike | None = None,
    directed: bool = False,
    seed: int = 0,
    structural: str | None = None,
    pe_dim: int = 8,
    feature_storage: str = "auto",
) -> Path:
    """Import a node-classification dataset from user files into ``root`` in OGB's layout.

    Args:
        name: dataset name; it is written to ``root/<name with - as _>``.
        root: directory that holds datasets.
        edges: CSV with a header row; ``src_col``/``dst_col`` (default: its first two columns) hold node ids.
        features: node features (optional): a CSV (``id_col`` + numeric columns; a ``label_col`` column
            there is ignored), a ``.npy`` whose row i is the node with integer id i, or a ``.json`` mapping
            node id -> list of active feature indices (multi-hot), or a SciPy sparse ``.npz``
            (``scipy.sparse.save_npz``) whose row i is the node with integer id i.
        labels: CSV with ``id_col`` and ``label_col`` (required); non-negative integer labels are kept,
            anything else is mapped to class ids in sorted order. Nodes without a label get -1 and stay out
            of the split.
        src_col, dst_col: edge columns.
        id_col, label_col: columns of the labels and features CSVs.
        split_ratios: train/valid/test fractions of the labelled nodes, drawn with ``seed``.
        split_dir: a directory with ``train.csv``, ``valid.csv``, ``test.csv`` (one original id per line,
            optional ``id`` header); takes precedence over ``split_ratios``.
        directed: keep edge directions (otherwise each unordered pair is stored once and the loader adds
            the reverse). Self-loops are always dropped (the training config adds them back if wanted).
        seed: seed of the random split (and of the random walks of ``structural="rw"``).
        structural: ``degree``, ``rw`` or ``lap`` (see :mod:`largegraph.data.structural`): structural
            features computed here, appended to ``features`` if given. With neither, the dataset has
            no features and models learn an embedding table instead.
        pe_dim: positional-encoding columns of ``rw``/``lap``.
        feature_storage: ``sparse`` stores the features as CSR (:mod:`largegraph.data.sparse`), ``dense``
            as a dense matrix; ``auto`` keeps sparse inputs (``.json``, ``.npz``) sparse and the others dense.

    Returns:
        The dataset directory.

    Raises:
        DatasetError: a missing or malformed input, naming the file and the column or line at fault.
    """
    check_dataset_name(name)
    edges_path = require_file(edges, "edges")
    if labels is None:
        raise DatasetError("no labels file given: node classification needs node labels; pass --labels "
                           "(a CSV with an id and a label column), or import with --task link")
    if split_dir is None and split_ratios is None:
        raise DatasetError("no split given: pass split ratios (e.g. 0.8,0.1,0.1) or a split directory")
    feat_path = require_file(features, "features") if features is not None else None
    label_path = require_file(labels, "labels")

    src, dst, _ = read_edges(edges_path, src_col, dst_col)
    feats = read_features(feat_path, id_col, label_col) if feat_path is not None else None
    label_ids, label_values = _read_labels(label_path, id_col, label_col)
    nodes = node_universe(src, dst, [label_ids], feats, feat_path)

    edge_array, edge_stats, _ = build_edges(nodes, src, dst, directed)
    sparse = feats is not None and store_sparse(feature_storage, feats)
    feat = feature_matrix(nodes, feats, feat_path, sparse) if feats is not None else None
    feat, node_input = with_structural(feat, edge_array, len(nodes), structural, pe_dim, seed)
    node_labels, num_classes, label_table = _encode_labels(nodes, label_ids, label_values, label_path)
    if split_dir is not None:
        split = _split_from_dir(nodes, node_labels, split_dir, id_col)
    else:
        split = _split_by_ratios(node_labels, split_ratios, seed)

    mappings = {"nodeidx2id": nodes.frame()}
    if label_table is not None:
        mappings["labelidx2label"] = label_table
    info = {
        "source": "import",
        "edges": str(edges_path.absolute()),
        "features": str(feat_path.absolute()) if feat_path is not None else None,
        "feature_format": feats.fmt if feats is not None else None,
        "feature_storage": ("sparse" if sparse else "dense") if feats is not None else None,
        "node_input": node_input,
        "labels": str(label_path.absolute()),
        "id_type": "int" if nodes.integer else "str",
        "directed": bool(directed),
        "split": ({"dir": str(Path(split_dir).expanduser().absolute())} if split_dir is not None
                  else {"ratios": [float(r) for r in split_ratios], "seed": int(seed)}),
        "labelled_nodes": int((node_labels >= 0).sum()),
        **edge_stats,
    }
    return write_node_dataset(
        root, name, edges=edge_array, num_nodes=len(nodes), feat=feat, labels=node_labels,
        num_classes=num_classes, split=split, layout="auto", mappings=mappings, info=info,
    )
