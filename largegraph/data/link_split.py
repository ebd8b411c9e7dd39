"""Held-out link splits in OGB's shape: positives of each part and sampled negatives that are never
edges of the graph (shared by the synthetic link generator and the link import)."""
from __future__ import annotations

import numpy as np

from largegraph.data.dataset_format import (EDGE, EDGE_NEG, HELDOUT, SOURCE_NODE, SPLITS, TARGET_NODE, TARGET_NODE_NEG,
                                    pair_keys)
from largegraph.data.synthetic_edges import undirected_keys
from largegraph.core.errors import DatasetError

# Rounds of rejection sampling for negatives before giving up (only a graph close to complete needs many).
_MAX_NEG_ROUNDS = 50


def _sample_non_edges(rng: np.random.Generator, n: int, count: int, forbidden: np.ndarray) -> np.ndarray:
    """``count`` distinct uniform random unordered pairs ``(min, max)`` that are neither self-loops
    nor in the sorted key array ``forbidden``."""
    keys = np.empty(0, dtype=np.int64)
    for _ in range(_MAX_NEG_ROUNDS):
        need = count - len(keys)
        if need <= 0:
            break
        m = int(need * 1.2) + 64
        new = undirected_keys(rng.integers(0, n, m), rng.integers(0, n, m), n)
        new = new[~np.isin(new, forbidden)]
        # Keep first occurrences in draw order (np.unique would sort and bias the truncation).
        keys = np.concatenate([keys, new])
        _, first = np.unique(keys, return_index=True)
        keys = keys[np.sort(first)]
    if len(keys) < count:
        raise DatasetError(f"cannot find {count} non-edges among {n} nodes; the graph is too dense")
    keys = keys[:count]
    return np.stack([keys // n, keys % n], 1)


def _sample_neg_targets(rng: np.random.Generator, n: int, sources: np.ndarray, k: int,
                        forbidden: np.ndarray) -> np.ndarray:
    """``(E, k)`` uniform random targets per source, none equal to the source or joined to it."""
    targets = rng.integers(0, n, (len(sources), k))
    src = np.broadcast_to(sources[:, None], targets.shape)
    bad = (targets == src) | np.isin(pair_keys(src, targets, n), forbidden)
    for _ in range(_MAX_NEG_ROUNDS):
        count = int(bad.sum())
        if count == 0:
            return targets
        targets[bad] = rng.integers(0, n, count)
        bad_now = (targets == src) | np.isin(pair_keys(src, targets, n), forbidden)
        bad = bad & bad_now
    raise DatasetError("cannot draw negative targets: some sources are joined to almost every node")


def build_link_split(edges: np.ndarray, parts: dict[str, np.ndarray], n: int, split_style: str, num_neg: int,
                     num_edge_neg: int | None, rng_orient: np.random.Generator,
                     rng_neg: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """OGB's ``get_edge_split()`` dict from a graph's edges and the edge ids of each part.

    Args:
        edges: ``(E, 2)`` every edge of the graph (all parts), undirected ones as ``(min, max)``.
        parts: ``train``/``valid``/``test`` -> row ids of ``edges``.
        n: number of nodes.
        split_style: ``edge`` (a shared ``edge_neg`` pool per held-out part, as many pairs as it has
            positives unless ``num_edge_neg``) or ``source_target`` (``num_neg`` negative targets per
            held-out positive, whose orientation is drawn from ``rng_orient``).
        rng_orient, rng_neg: the random streams of orientations and of negatives.

    Negatives are never edges of the graph (in any part) nor self-pairs.
    """
    all_keys = np.unique(pair_keys(edges[:, 0], edges[:, 1], n))
    split: dict[str, dict[str, np.ndarray]] = {}
    for part in SPLITS:
        pos = edges[parts[part]]
        heldout = part in HELDOUT
        if split_style == "edge":
            split[part] = {EDGE: pos}
            if heldout:
                count = len(pos) if num_edge_neg is None else int(num_edge_neg)
                split[part][EDGE_NEG] = _sample_non_edges(rng_neg, n, count, all_keys)
        else:
            if heldout:
                # Random orientation: the source is not always the smaller id.
                flip = rng_orient.random(len(pos)) < 0.5
                pos = np.where(flip[:, None], pos[:, ::-1], pos)
            split[part] = {SOURCE_NODE: pos[:, 0].copy(), TARGET_NODE: pos[:, 1].copy()}
            if heldout:
                split[part][TARGET_NODE_NEG] = _sample_neg_targets(rng_neg, n, pos[:, 0], int(num_neg), all_keys)
    return split
