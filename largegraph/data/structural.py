"""Structural node features for graphs that come without features: log-degree, optionally followed
by random-walk return probabilities or Laplacian eigenvectors (positional encodings).

Computed once, when a dataset is imported (``largegraph data import --structural``), and stored as
ordinary node features, so that training, sampling and inference treat them like any others.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from largegraph.core.errors import DatasetError

STRUCTURAL_KINDS = ("degree", "rw", "lap")
# Walkers per node of the random-walk estimate: the return probabilities it estimates have a
# standard error of at most 1/(2 sqrt(WALKS)) = 0.03.
WALKS = 256
# Walker positions held at once (int64 each): bounds the memory of the estimate on big graphs.
_WALKER_CHUNK = 1 << 22


def structural_features(edges: np.ndarray, num_nodes: int, kind: str, pe_dim: int = 8,
                        seed: int = 0) -> np.ndarray:
    """``(N, 1 + k)`` float32 features: ``log(1 + degree)``, then ``pe_dim`` encodings for ``rw``/``lap``.

    Args:
        edges: ``(E, 2)`` node pairs; direction is ignored (structure of the undirected graph).
        num_nodes: number of nodes N.
        kind: ``degree``, ``rw`` (return probability of a random walk after 1..pe_dim steps,
            estimated from :data:`WALKS` seeded walks per node) or ``lap`` (the ``pe_dim`` eigenvectors
            of the normalised adjacency with the largest eigenvalues after the first, i.e. the
            smoothest non-trivial Laplacian eigenvectors; signs fixed so each has a positive sum).
        pe_dim: number of positional-encoding columns.
        seed: seeds the walks and the eigensolver's start vector.

    Raises:
        DatasetError: unknown kind or a pe_dim the graph cannot give.
    """
    if kind not in STRUCTURAL_KINDS:
        raise DatasetError(f"structural features must be one of {', '.join(STRUCTURAL_KINDS)}, got {kind!r}")
    adj = _adjacency(edges, num_nodes)
    degree = np.asarray(adj.sum(axis=1)).ravel()
    columns = [np.log1p(degree)[:, None]]
    if kind != "degree":
        if pe_dim < 1:
            raise DatasetError(f"--pe-dim must be at least 1, got {pe_dim}")
        if kind == "rw":
            columns.append(_return_probabilities(adj, pe_dim, seed))
        else:
            columns.append(_laplacian_eigenvectors(adj, degree, pe_dim, seed))
    return np.hstack(columns).astype(np.float32)


def _adjacency(edges: np.ndarray, n: int) -> sp.csr_matrix:
    """Symmetric 0/1 adjacency without self-loops."""
    u, v = edges[:, 0], edges[:, 1]
    keep = u != v
    u, v = u[keep], v[keep]
    adj = sp.coo_matrix((np.ones(2 * len(u), dtype=np.float64), (np.concatenate([u, v]), np.concatenate([v, u]))),
                        shape=(n, n)).tocsr()
    adj.data[:] = 1.0  # a pair given in both directions is still one edge
    return adj


def _return_probabilities(adj: sp.csr_matrix, steps: int, seed: int) -> np.ndarray:
    """Fraction of each node's walkers standing on it after 1..steps uniform random-walk steps
    (an isolated node's walkers stay put, so it returns with probability 1)."""
    n = adj.shape[0]
    indptr, indices = adj.indptr.astype(np.int64), adj.indices.astype(np.int64)
    deg = np.diff(indptr)
    rng = np.random.default_rng(seed)
    out = np.zeros((n, steps), dtype=np.float64)
    nodes_per_chunk = max(1, _WALKER_CHUNK // WALKS)
    for first in range(0, n, nodes_per_chunk):
        start = np.repeat(np.arange(first, min(n, first + nodes_per_chunk)), WALKS)
        cur = start.copy()
        for k in range(steps):
            d = deg[cur]
            step = np.floor(rng.random(len(cur)) * np.maximum(d, 1)).astype(np.int64)
            cur = np.where(d > 0, indices[np.minimum(indptr[cur] + step, len(indices) - 1)], cur)
            out[:, k] += np.bincount(start[cur == start], minlength=n)
    return out / WALKS


def _laplacian_eigenvectors(adj: sp.csr_matrix, degree: np.ndarray, k: int, seed: int) -> np.ndarray:
    from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigsh

    n = adj.shape[0]
    if k + 1 >= n:
        raise DatasetError(f"--pe-dim {k} needs a graph of more than {k + 1} nodes (this one has {n}); "
                           f"lower --pe-dim")
    inv_sqrt = sp.diags(np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1)), 0.0))
    # Largest eigenvalues of D^-1/2 A D^-1/2 = smallest of the normalised Laplacian; the largest end
    # of the spectrum is where Lanczos converges fast, the smallest end would need a factorisation.
    norm_adj = inv_sqrt @ adj @ inv_sqrt
    start = np.random.default_rng(seed).random(n)
    try:
        values, vectors = eigsh(norm_adj, k=k + 1, which="LA", v0=start, tol=1e-6, maxiter=max(1000, 20 * n))
    except (ArpackError, ArpackNoConvergence) as exc:
        raise DatasetError(f"Laplacian eigenvectors did not converge ({exc}); use --structural rw instead") from None
    vectors = vectors[:, np.argsort(-values)][:, 1:]
    signs = np.where(vectors.sum(axis=0) < 0, -1.0, 1.0)
    return vectors * signs
