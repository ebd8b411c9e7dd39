"""The synthetic generator's edges: Chung-Lu power-law degrees with a share of within-class edges.

Every node gets a weight drawn from a Pareto distribution and edge endpoints are drawn proportionally
to weight, either inside the source's own (true) class or outside it, in fixed-size chunks of
vectorised NumPy; see :mod:`largegraph.data.synthetic` for what the graphs are built to resemble.
"""
from __future__ import annotations

import math

import numpy as np

from largegraph.data.dataset_format import pair_keys

# Edges are drawn this many at a time. It is a constant, not a function of free memory, because the
# chunking decides how random numbers are consumed: a machine-dependent chunk size would make the
# graph depend on the machine. 4 Mi edges keep each chunk's temporaries around 200 MB.
_EDGE_CHUNK = 1 << 22
# How many extra rounds of edge sampling may top up edges lost to self-loops and duplicates; a graph
# so dense that this is not enough keeps a (recorded) shortfall instead of looping for long.
_MAX_TOPUP_ROUNDS = 8
# Spread of class sizes: log-normal shares with this sigma give a largest/smallest class ratio of
# about 2-4 for 8-47 classes, "mildly imbalanced" like most real benchmarks that are not long-tailed.
_CLASS_SIZE_SIGMA = 0.35


def node_weights(rng: np.random.Generator, n: int, avg_degree: float, exponent: float) -> np.ndarray:
    """Chung-Lu weights: expected degrees following a power law with the given exponent.

    A Pareto sample ``u ** (-1 / (gamma - 1))`` has density ~ w^-gamma. The weights are capped at the
    structural cut-off sqrt(N * avg_degree) (in degree units). Chung-Lu joins i and j with expected
    multiplicity w_i * w_j / sum(w); the cut-off keeps that at most 1, so two hubs do not draw many
    copies of the same edge (which deduplication would silently turn into lost degree), and no node
    takes a large share of all edges (a star rather than a hub).
    """
    w = (1.0 - rng.random(n)) ** (-1.0 / (exponent - 1.0))  # 1 - U lies in (0, 1]: no division by zero
    cap = math.sqrt(n * avg_degree) / avg_degree  # the cut-off, in multiples of the mean weight
    # Capping lowers the mean, which lowers the cap; a few rounds reach the fixed point.
    for _ in range(5):
        np.minimum(w, cap * w.mean(), out=w)
    return w


def class_sizes(rng: np.random.Generator, n: int, num_classes: int) -> np.ndarray:
    shares = np.exp(_CLASS_SIZE_SIGMA * rng.standard_normal(num_classes))
    shares /= shares.sum()
    # Every class gets at least 2 nodes so that within-class edges are always possible.
    return rng.multinomial(n - 2 * num_classes, shares) + 2


class EdgeSampler:
    """Draws (source, target) pairs: source ~ weight, target ~ weight inside or outside its class.

    Nodes are laid out sorted by class; one cumulative-weight array then covers all classes, and each
    class is a contiguous range of it. Drawing "proportional to weight within class c" is a uniform
    point in c's range of cumulative weight, mapped back to the node whose interval holds it; "within
    any other class" is a uniform point in the total weight minus c's, shifted past c's range.
    """

    # The guide table has at most this many buckets per node (memory: 4 bytes a bucket).
    _MAX_BUCKETS_PER_NODE = 4

    def __init__(self, weights: np.ndarray, true_class: np.ndarray, num_classes: int):
        self.order = np.argsort(true_class, kind="stable")
        self.sorted_class = true_class[self.order]
        self.cum = np.cumsum(weights[self.order])
        self.total = float(self.cum[-1])
        counts = np.bincount(true_class, minlength=num_classes)
        self.first = np.concatenate(([0], np.cumsum(counts)[:-1]))  # first sorted position per class
        self.last = self.first + counts - 1
        cum0 = np.concatenate(([0.0], self.cum))
        self.lo = cum0[self.first]  # cumulative weight before each class's range
        self.mass = cum0[self.first + counts] - self.lo
        self._build_guide(float(weights.min()))

    def _build_guide(self, min_weight: float) -> None:
        """Guide table (indexed search): bucket k of width total/K remembers the first node whose
        interval reaches past the bucket's start.

        A binary search over millions of cumulative weights costs ~20 cache misses per draw, which made
        it most of the generation time at ogbn-products scale; starting from the guide entry needs one
        or two look-ups. With buckets no wider than the smallest weight, each bucket holds at most one
        interval boundary, so the walk forward is a single step.
        """
        n = len(self.cum)
        buckets = min(int(math.ceil(self.total / min_weight)), self._MAX_BUCKETS_PER_NODE * n) + 1
        self.inv_width = buckets / self.total
        starts = np.arange(buckets, dtype=np.float64) / self.inv_width
        # Shrinking the bucket starts a hair makes each entry a lower bound even where t * inv_width
        # rounds up into the next bucket; the forward walk then finishes the job.
        guide = np.searchsorted(self.cum, starts * (1 - 1e-9), side="right")
        np.minimum(guide, n - 1, out=guide)
        self.guide = guide.astype(np.int32 if n < 2**31 else np.int64)

    def _locate(self, t: np.ndarray) -> np.ndarray:
        """Sorted positions of the nodes whose cumulative-weight intervals contain the points ``t``
        (same as ``np.searchsorted(self.cum, t, side="right")`` clamped to the last node)."""
        last = len(self.cum) - 1
        k = (t * self.inv_width).astype(np.int64)
        np.clip(k, 0, len(self.guide) - 1, out=k)
        pos = self.guide[k].astype(np.int64)
        active = np.flatnonzero((pos < last) & (self.cum[pos] <= t))
        while active.size:
            pos[active] += 1
            p = pos[active]
            active = active[(p < last) & (self.cum[p] <= t[active])]
        return pos

    def sample(self, rng: np.random.Generator, m: int, same_class: bool) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``m`` (source, target) node pairs, all within a class or all across classes."""
        src_pos = self._locate(rng.random(m) * self.total)
        c = self.sorted_class[src_pos]
        u = rng.random(m)
        if same_class:
            # A point in c's slice of the cumulative weights.
            dst_pos = self._locate(self.lo[c] + u * self.mass[c])
            # Rounding at a slice edge could step one node into a neighbouring class; clamp it back
            # so that same-class draws are same-class by construction.
            np.clip(dst_pos, self.first[c], self.last[c], out=dst_pos)
        else:
            # A point in [0, total - mass_c), moved past c's slice if it falls at or after its start.
            t = u * (self.total - self.mass[c])
            t += np.where(t >= self.lo[c], self.mass[c], 0.0)
            dst_pos = self._locate(t)
            # Rounding at a slice edge can land in c itself (probability ~1e-16 per draw); such a pair
            # would be mislabelled as cross-class, so it is dropped like a self-loop.
            dst_pos = np.where(self.sorted_class[dst_pos] == c, src_pos, dst_pos)
        return self.order[src_pos], self.order[dst_pos]


def undirected_keys(src: np.ndarray, dst: np.ndarray, n: int) -> np.ndarray:
    """Encode undirected pairs as int64 ``min * n + max``, dropping self-loops."""
    keep = src != dst
    return pair_keys(src[keep], dst[keep], n)


def _draw_unique_pairs(rng: np.random.Generator, sampler: EdgeSampler, n: int, m: int,
                       same_class: bool) -> np.ndarray:
    """Draw ``m`` candidate edges in chunks; return their sorted unique pair keys."""
    parts = []
    for start in range(0, m, _EDGE_CHUNK):
        src, dst = sampler.sample(rng, min(_EDGE_CHUNK, m - start), same_class)
        parts.append(undirected_keys(src, dst, n))
        del src, dst
    keys = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    del parts
    return np.unique(keys)


def sample_edges(rng: np.random.Generator, sampler: EdgeSampler, n: int, target: int,
                  same_class: bool) -> tuple[np.ndarray, int]:
    """Sorted unique undirected pair keys of one kind, exactly ``target`` unless the graph is too dense.

    Self-loops and repeated pairs are dropped, so a first batch slightly larger than the target is
    drawn, then topped up in rounds sized by the observed yield, and the surplus is removed uniformly
    at random (which keeps the degree shape unbiased).

    Returns:
        (keys, number of candidate edges drawn).
    """
    if target == 0:
        return np.empty(0, dtype=np.int64), 0
    drawn = int(target * 1.04) + 64  # a few % are lost to self-loops and duplicates at typical density
    keys = _draw_unique_pairs(rng, sampler, n, drawn, same_class)
    rounds = 0
    while len(keys) < target and rounds < _MAX_TOPUP_ROUNDS:
        rounds += 1
        yield_rate = max(len(keys) / drawn, 0.05)
        extra = min(int((target - len(keys)) / yield_rate * 1.2) + 1024, 2 * target + 1024)
        new = _draw_unique_pairs(rng, sampler, n, extra, same_class)
        drawn += extra
        keys = np.union1d(keys, new)
        del new
    if len(keys) > target:
        drop = rng.choice(len(keys), size=len(keys) - target, replace=False)
        keep = np.ones(len(keys), dtype=bool)
        keep[drop] = False
        keys = keys[keep]
    return keys, drawn
