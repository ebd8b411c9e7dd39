"""Tables that `largegraph predict` and `largegraph embed` hand to users: CSV or Parquet chosen by the
output file's extension, written chunk by chunk (memory stays at one chunk) into a temporary sibling
that replaces the target only once complete, so an interrupted write never leaves half a file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from largegraph.core.errors import ConfigError
from largegraph.core.fsutil import fsync_file, replacing

TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def table_format(path: str | os.PathLike, extra: dict[str, str] | None = None) -> str:
    """The format named by ``path``'s extension (``extra``: more extensions a command accepts).

    Raises:
        ConfigError: unknown extension, missing folder, or Parquet without pyarrow.
    """
    path = Path(path)
    formats = {**TABLE_FORMATS, **(extra or {})}
    fmt = formats.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"--out {path}: unknown extension {path.suffix or '(none)'!r}; use one of "
                          f"{', '.join(sorted(formats))}")
    if not path.parent.is_dir():
        raise ConfigError(f"--out {path}: folder {path.parent} does not exist; create it first")
    if fmt == "parquet":
        _pyarrow()
    return fmt


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ConfigError("Parquet output needs pyarrow, which is not installed: pip install 'largegraph[parquet]' "
                          "(or write a .csv)") from None
    return pyarrow


def write_table(path: str | os.PathLike, chunks: Iterable[pd.DataFrame]) -> int:
    """Write the row chunks (same columns each) as one CSV or Parquet file, atomically.

    Returns:
        The number of rows written.
    """
    path = Path(path)
    fmt = table_format(path)
    rows = 0
    with replacing(path) as tmp:
        if fmt == "csv":
            with open(tmp, "w", newline="") as handle:
                for i, chunk in enumerate(chunks):
                    chunk.to_csv(handle, header=i == 0, index=False, float_format="%.6g")
                    rows += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
        else:
            rows = _write_parquet(tmp, chunks)
    return rows


def _write_parquet(tmp: Path, chunks: Iterable[pd.DataFrame]) -> int:
    pa = _pyarrow()
    writer, rows = None, 0
    try:
        for chunk in chunks:
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if writer is None:
                writer = pa.parquet.ParquetWriter(str(tmp), table.schema)
            writer.write_table(table)  # one row group per chunk
            rows += len(chunk)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # no chunk at all: still a valid, empty file
        pa.parquet.write_table(pa.table({}), str(tmp))
    fsync_file(tmp)
    return rows


def write_matrix_npy(path: str | os.PathLike, rows: np.ndarray | Iterable[np.ndarray], shape: tuple[int, int],
                     dtype=np.float32) -> None:
    """Write a ``shape`` matrix given as row chunks into a ``.npy`` file, atomically, one chunk in
    memory at a time (the file is a memory map while it is filled)."""
    with replacing(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        start = 0
        for chunk in rows:
            out[start:start + len(chunk)] = chunk
            start += len(chunk)
        out.flush()
        del out
        fsync_file(tmp)
