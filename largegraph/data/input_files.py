"""Reading a user's input files for ``largegraph data import``: edge lists, node features, labels and
split files, each checked as it is read.

Every problem is a one-line :class:`DatasetError` naming the file (and the column or line) at fault;
turning the ids these files hold into node numbers is :mod:`largegraph.data.node_ids`' job.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from largegraph.data.dataset_format import SPLITS
from largegraph.core.errors import DatasetError

PathLike = str | os.PathLike
# Cells read as missing (NaN) in feature columns, so that they are reported rather than parsed as text.
_MISSING = ["", "nan", "NaN", "NAN", "NA", "N/A", "null", "NULL", "None"]
# Feature files that hold sparse matrices: stored sparse unless --feature-storage dense.
SPARSE_FORMATS = ("json", "npz")
# Feature files whose row i is the node with integer id i.
POSITIONAL_FORMATS = ("npy", "npz")


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def first_row(mask: np.ndarray) -> int | None:
    """Index of the first true entry of ``mask`` (the row an error names), None if there is none."""
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


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
        raise DatasetError(f"cannot read {what} file {path} as CSV: {one_line(exc)}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def require_column(frame: pd.DataFrame, col: str, path: Path, what: str, flag: str) -> None:
    if col not in frame.columns:
        columns = ", ".join(map(repr, frame.columns))
        raise DatasetError(f"{what} file {path} has no column {col!r} (columns: {columns}); "
                           f"rename the column or pass {flag}")


def id_column(frame: pd.DataFrame, col: str, path: Path, what: str, flag: str) -> np.ndarray:
    """Return a column of node ids as stripped strings; raise if it is missing or has empty cells."""
    require_column(frame, col, path, what, flag)
    values = frame[col].fillna("").str.strip()
    empty = (values == "").to_numpy()
    if empty.any():
        line = int(np.flatnonzero(empty)[0]) + 2  # 1-based, after the header row
        raise DatasetError(f"{what} file {path}, line {line}: column {col!r} is empty; every row needs a node id")
    return values.to_numpy(dtype=object)


@dataclass
class FeatureFile:
    """Feature rows with their original (string) ids; ``ids`` is None for ``.npy``/``.npz``, whose row i is
    id i. ``matrix`` is a SciPy CSR matrix for the sparse formats (``.json``, ``.npz``)."""

    fmt: str
    ids: np.ndarray | None
    matrix: object

    @property
    def sparse(self) -> bool:
        return self.fmt in SPARSE_FORMATS


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
    require_column(frame, col, path, "edges", "--time-col")
    text = frame[col].fillna("").str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    row = first_row(~np.isfinite(values))
    if row is not None:
        raise DatasetError(f"edges file {path}, line {row + 2}: timestamp column {col!r} has non-numeric value "
                           f"{text.iloc[row]!r}; timestamps must be numbers (e.g. Unix seconds or years)")
    return values


def read_features(path: Path, id_col: str, label_col: str) -> FeatureFile:
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


def _read_features_csv(path: Path, id_col: str, label_col: str) -> FeatureFile:
    header = read_csv_table(path, "features", nrows=0)
    require_column(header, id_col, path, "features", "--id-col")
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
    return FeatureFile("csv", ids, frame[cols].to_numpy(dtype=np.float32))


def _read_features_npy(path: Path) -> FeatureFile:
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetError(f"cannot read features file {path} as .npy: {one_line(exc)}") from None
    if matrix.ndim != 2 or not (np.issubdtype(matrix.dtype, np.number) or matrix.dtype == bool):
        raise DatasetError(f"features file {path} holds a {matrix.ndim}-d {matrix.dtype} array; it must be a "
                           f"2-d numeric array of shape (number of ids, feature dim)")
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise DatasetError(f"features file {path} has shape {matrix.shape}; it holds no features")
    return FeatureFile("npy", None, matrix)


def _read_features_json(path: Path) -> FeatureFile:
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise DatasetError(f"cannot read features file {path} as JSON: {one_line(exc)}") from None
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
    return FeatureFile("json", ids, matrix)


def _read_features_npz(path: Path) -> FeatureFile:
    from largegraph.data.sparse import read_npz

    matrix = read_npz(path, "features file")
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise DatasetError(f"features file {path} has shape {matrix.shape}; it holds no features")
    return FeatureFile("npz", None, matrix)


def read_labels(path: Path, id_col: str, label_col: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (string ids, string labels); an empty label cell means the node is unlabelled."""
    frame = read_csv_table(path, "labels")
    ids = id_column(frame, id_col, path, "labels", "--id-col")
    require_column(frame, label_col, path, "labels", "--label-col")
    values = frame[label_col].str.strip().to_numpy(dtype=object)
    if not (values != "").any():
        raise DatasetError(f"labels file {path} labels no node (no rows, or column {label_col!r} is empty); "
                           f"node classification needs labelled nodes")
    return ids, values


def read_split_files(split_dir: PathLike) -> dict[str, tuple[Path, np.ndarray, np.ndarray]]:
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
            raise DatasetError(f"cannot read split file {path}: {one_line(exc)}") from None
        entries = [(n, line.strip().strip('"').strip()) for n, line in enumerate(lines, 1)]
        entries = [(n, v) for n, v in entries if v]
        parts[part] = (path, np.array([n for n, _ in entries], dtype=np.int64),
                       np.array([v for _, v in entries], dtype=object))
    return parts
