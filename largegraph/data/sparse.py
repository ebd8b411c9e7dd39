"""Sparse node features kept sparse end to end: on disk, in the processed cache, per batch.

Social graphs often carry multi-hot features (page likes, interests, keywords): thousands of columns
with a dozen or so active per node. Stored dense, the matrix is hundreds of times larger than its
content and every mini-batch gathers and multiplies rows that are almost all zeros. Here they stay
in CSR form:

* on disk, ``raw/node-feat-csr.npz`` beside OGB's files, in SciPy's ``save_npz`` layout (readable
  with ``scipy.sparse.load_npz``); OGB's meta says the dataset has no node attributes, so OGB's
  loader reads the graph, labels and split as usual and this file is read next to it;
* in the processed cache, three arrays ``feat_indptr``/``feat_indices``/``feat_values`` that every
  process maps like the topology;
* per batch, the input nodes' rows gathered as a ``torch.sparse_csr`` tensor, which the encoders'
  first layer multiplies with its weights (sparse x dense) instead of a dense row gather and GEMM.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from largegraph.core.errors import DatasetError


def csr_tensor(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A ``torch.sparse_csr`` tensor, without torch's "beta support" warning on every batch."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(crow, col, values, size=shape)


def is_sparse(x) -> bool:
    """Whether ``x`` is a batch of sparse feature rows (a ``torch.sparse_csr`` tensor)."""
    return isinstance(x, torch.Tensor) and x.layout == torch.sparse_csr


@dataclass
class SparseFeatures:
    """An ``(N, D)`` node feature matrix in CSR form.

    Attributes:
        indptr: int64 ``(N+1,)`` row offsets into ``indices``/``values``.
        indices: int32 (or int64) ``(nnz,)`` column of every stored value, sorted within a row.
        values: ``(nnz,)`` stored values (float32, or float16/bfloat16 per ``data.feature_dtype``).
        num_cols: D, the feature width.
    """

    indptr: torch.Tensor
    indices: torch.Tensor
    values: torch.Tensor
    num_cols: int

    @property
    def num_rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def shape(self) -> tuple[int, int]:
        return self.num_rows, self.num_cols

    @property
    def nnz(self) -> int:
        return len(self.indices)

    @property
    def nbytes(self) -> int:
        """Bytes of the three arrays (what the features really occupy)."""
        return sum(t.numel() * t.element_size() for t in (self.indptr, self.indices, self.values))

    def arrays(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.indptr, self.indices, self.values

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows ``ids`` (any order, repeats allowed) as a float32 ``(len(ids), D)`` sparse CSR tensor.

        Only the ids' stored entries are read: per batch the cost is the batch's non-zeros, not
        rows x D.
        """
        ids = ids.to(torch.int64)
        start = self.indptr[ids]
        counts = self.indptr[ids + 1] - start
        crow = torch.zeros(len(ids) + 1, dtype=torch.int64)
        torch.cumsum(counts, 0, out=crow[1:])
        total = int(crow[-1])
        # Entry j of output row r sits at stored position start[r] + j = (start[r] - crow[r]) + (crow[r] + j).
        pos = torch.repeat_interleave(start - crow[:-1], counts, output_size=total) + torch.arange(total)
        return csr_tensor(crow, self.indices[pos].to(torch.int64), self.values[pos].to(torch.float32),
                          (len(ids), self.num_cols))

    def row_range(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` as a float32 sparse CSR tensor (a contiguous slice: no index gather)."""
        stop = min(stop, self.num_rows)
        lo, hi = int(self.indptr[start]), int(self.indptr[stop])
        return csr_tensor(self.indptr[start:stop + 1] - lo, self.indices[lo:hi].to(torch.int64),
                          self.values[lo:hi].to(torch.float32), (stop - start, self.num_cols))

    def __getitem__(self, key: slice | torch.Tensor) -> torch.Tensor:
        if isinstance(key, slice):
            start, stop, step = key.indices(self.num_rows)
            if step == 1:
                return self.row_range(start, stop)
            key = torch.arange(start, stop, step)
        return self.rows(key)

    def to_dense(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The ``(N, D)`` dense matrix (for a model that cannot take sparse input, and for tests)."""
        out = torch.zeros(self.num_rows, self.num_cols, dtype=dtype)
        rows = torch.repeat_interleave(torch.arange(self.num_rows), self.indptr[1:] - self.indptr[:-1])
        out[rows, self.indices.to(torch.int64)] = self.values.to(dtype)
        return out

    def row_nonfinite(self) -> torch.Tensor:
        """Ids of the rows holding a NaN or inf value."""
        bad = (~torch.isfinite(self.values.float())).nonzero().flatten()
        if not len(bad):
            return bad
        return torch.unique(torch.searchsorted(self.indptr, bad, right=True) - 1)

    def normalize_rows(self) -> None:
        """L1-normalise every row in place (``data.feature_norm: row``)."""
        counts = self.indptr[1:] - self.indptr[:-1]
        sums = torch.zeros(self.num_rows, dtype=self.values.dtype)
        rows = torch.repeat_interleave(torch.arange(self.num_rows), counts)
        sums.index_add_(0, rows, self.values.abs())
        self.values.div_(sums.clamp_min(1e-12)[rows])

    @classmethod
    def from_scipy(cls, matrix) -> "SparseFeatures":
        """From a SciPy sparse matrix (any format); duplicates summed, columns sorted within rows."""
        csr = matrix.tocsr()
        csr.sum_duplicates()
        csr.sort_indices()
        index_dtype = np.int32 if csr.shape[1] < 2**31 else np.int64
        return cls(torch.from_numpy(csr.indptr.astype(np.int64)), torch.from_numpy(csr.indices.astype(index_dtype)),
                   torch.from_numpy(csr.data.astype(np.float32)), int(csr.shape[1]))


# ---------------------------------------------------------------------------------------------- files
def write_npz(matrix, handle: BinaryIO) -> None:
    """Write a SciPy sparse matrix as CSR in ``save_npz``'s layout (uncompressed: read with one copy)."""
    import scipy.sparse

    csr = matrix.tocsr()
    csr.sum_duplicates()
    csr.sort_indices()
    scipy.sparse.save_npz(handle, csr.astype(np.float32), compressed=False)


def read_npz(path: Path, what: str = "sparse features file"):
    """A ``save_npz`` file as a SciPy CSR matrix.

    Raises:
        DatasetError: the file is missing, not a SciPy sparse ``.npz``, or not 2-d numeric.
    """
    import scipy.sparse

    try:
        matrix = scipy.sparse.load_npz(path)
    except FileNotFoundError:
        raise DatasetError(f"{what} {path} does not exist; rewrite the dataset with `largegraph data import`") from None
    except (ValueError, OSError, KeyError, EOFError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DatasetError(f"cannot read {what} {path} as a SciPy sparse matrix (scipy.sparse.save_npz): "
                           f"{reason}") from None
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.number) and matrix.dtype != bool:
        raise DatasetError(f"{what} {path} holds a {matrix.dtype} matrix; it must be a numeric 2-d sparse matrix")
    return matrix.tocsr()
