"""Synthetic typed graphs shaped like ogbn-mag, at any scale, with a signal a typed GNN can learn.

ogbn-mag (OGB's typed benchmark) has papers, authors, institutions and fields of study; features
(128-d) on papers only; each paper's venue (349 classes) is the label, with a time split (papers
before 2018 train, 2018 valid, 2019 test). The generator keeps its types, relations, counts (times
``scale``), feature width, classes, the split's shares and heavy-tailed degrees (Chung-Lu: every
node draws edges in proportion to a Pareto weight, as :mod:`largegraph.data.synthetic_edges` does
for one type), and plants the signal the issue asks a typed model to find:

* every venue is a community: each author, field of study and institution has a home venue, and
  a share ``homophily`` of a paper's authors, topics and citations is drawn from its venue's
  community (the rest from everyone, by weight);
* a paper's own features are its venue's centroid scaled by ``feature_signal`` plus unit Gaussian
  noise, deliberately weak: 349 classes in 128 noisy dimensions leave a features-only model (MLP)
  far below one that reads the venues of the paper's authors' other papers, its topics and its
  citations.

Same parameters and seed give identical arrays. Vectorised NumPy: scale 0.1 (74k papers, 2.1M
edges) takes seconds, most of it writing OGB's csv files.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from largegraph.core.errors import DatasetError
from largegraph.data.hetero_writer import TypedArrays, write_hetero_dataset
from largegraph.data.synthetic_edges import node_weights

GENERATOR = "largegraph.synthetic_hetero"

PAPER, AUTHOR, INSTITUTION, FIELD = "paper", "author", "institution", "field_of_study"
WRITES = (AUTHOR, "writes", PAPER)
CITES = (PAPER, "cites", PAPER)
HAS_TOPIC = (PAPER, "has_topic", FIELD)
AFFILIATED = (AUTHOR, "affiliated_with", INSTITUTION)
# ogbn-mag's counts (OGB's paper, table of ogbn-mag).
MAG_NODES = {PAPER: 736_389, AUTHOR: 1_134_649, INSTITUTION: 8_740, FIELD: 59_965}
MAG_EDGES = {AFFILIATED: 1_043_998, WRITES: 7_145_660, CITES: 5_416_271, HAS_TOPIC: 7_505_078}
MAG_CLASSES, MAG_FEAT_DIM = 349, 128
# ogbn-mag's time split: 629,571 papers before 2018 (train), 64,879 of 2018, 41,939 of 2019.
MAG_SPLIT = {"train": 629_571, "valid": 64_879, "test": 41_939}
FIRST_YEAR, VALID_YEAR, TEST_YEAR = 2010, 2018, 2019
# Degree exponents: a few prolific authors and highly cited papers, generic fields of study.
_EXPONENT = {PAPER: 3.0, AUTHOR: 2.2, "cited": 2.1, FIELD: 2.1, INSTITUTION: 1.9}
# Venue sizes: log-normal shares, a long tail of small venues beside a few big ones.
_VENUE_SIGMA = 1.0
# Institutions follow their authors' venue less than papers follow theirs.
_INSTITUTION_HOMOPHILY_SHARE = 0.5
# Rounds of draws that top up pairs lost as duplicates (dense communities repeat pairs).
_DRAW_ROUNDS = 4


@dataclass
class SynthHeteroParams:
    """Settings of an ogbn-mag-shaped graph (CLI flag names in brackets).

    Attributes:
        scale: node and edge counts as a share of ogbn-mag's (``--scale``; 1 = ogbn-mag's size).
        num_classes: venues (``--classes``; ogbn-mag: 349).
        feat_dim: paper feature width (``--feat-dim``; ogbn-mag: 128).
        homophily: share of a paper's authors, topics and citations drawn from its venue's community
            (``--homophily``).
        feature_signal: length of the venue centroid in the paper features, in noise standard
            deviations (``--feature-signal``); small, so that the graph carries most of the signal.
        seed: random seed (``--seed``).
    """

    scale: float = 0.1
    num_classes: int = MAG_CLASSES
    feat_dim: int = MAG_FEAT_DIM
    homophily: float = 0.3
    feature_signal: float = 2.2
    seed: int = 0

    def counts(self) -> dict[str, int]:
        """Nodes per type at this scale."""
        return {t: max(int(round(n * self.scale)), 1) for t, n in MAG_NODES.items()}


def validate_params(p: SynthHeteroParams) -> None:
    """Reject settings that cannot give a sensible graph (raises DatasetError naming the flag)."""
    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if not number(p.scale) or not 0 < p.scale <= 10:
        raise DatasetError(f"--scale must lie in (0, 10], got {p.scale!r}")
    if not isinstance(p.num_classes, int) or p.num_classes < 2:
        raise DatasetError(f"--classes must be an integer >= 2, got {p.num_classes!r}")
    counts = p.counts()
    smallest = min(round(counts[PAPER] * share / sum(MAG_SPLIT.values())) for share in MAG_SPLIT.values())
    if counts[PAPER] < 2 * p.num_classes or smallest < 1 or counts[INSTITUTION] < 2:
        raise DatasetError(f"--scale {p.scale} gives {counts[PAPER]} papers and {counts[INSTITUTION]} institutions, too "
                           f"few for {p.num_classes} classes and a time split; raise --scale or lower --classes")
    if not isinstance(p.feat_dim, int) or p.feat_dim < 1:
        raise DatasetError(f"--feat-dim must be an integer >= 1, got {p.feat_dim!r}")
    if not number(p.homophily) or not 0 <= p.homophily <= 1:
        raise DatasetError(f"--homophily must lie in [0, 1], got {p.homophily!r}")
    if not number(p.feature_signal) or p.feature_signal < 0:
        raise DatasetError(f"--feature-signal must be a finite number >= 0, got {p.feature_signal!r}")
    if not isinstance(p.seed, int) or p.seed < 0:
        raise DatasetError(f"--seed must be an integer >= 0, got {p.seed!r}")


class _CommunitySampler:
    """Draws nodes of one type in proportion to weight, inside one community or among all.

    Nodes are laid out sorted by community, so one cumulative-weight array covers every community
    and each is a contiguous range of it: a draw inside community c is a uniform point in c's range.
    """

    def __init__(self, weights: np.ndarray, community: np.ndarray, num_communities: int):
        self.order = np.argsort(community, kind="stable")
        self.cum = np.cumsum(weights[self.order])
        counts = np.bincount(community, minlength=num_communities)
        ends = np.cumsum(counts)
        self.first, self.last = ends - counts, ends - 1
        cum0 = np.concatenate(([0.0], self.cum))
        self.lo = cum0[self.first]
        self.mass = cum0[ends] - self.lo

    def draw(self, rng: np.random.Generator, communities: np.ndarray, homophily: float) -> np.ndarray:
        """One node per entry of ``communities``: from that community with probability
        ``homophily`` (when it has members), else from all nodes."""
        m = len(communities)
        u = rng.random(m)
        inside = (rng.random(m) < homophily) & (self.mass[communities] > 0)
        t = u * self.cum[-1]
        c = communities[inside]
        t[inside] = self.lo[c] + u[inside] * self.mass[c]
        pos = np.minimum(np.searchsorted(self.cum, t, side="right"), len(self.cum) - 1)
        # Rounding at a range's edge could step into the next community; clamp it back.
        pos[inside] = np.clip(pos[inside], self.first[c], self.last[c])
        return self.order[pos]


def _edges(rng: np.random.Generator, target: int, sources: np.ndarray, draw_targets, n_dst: int,
           no_loops: bool = False) -> np.ndarray:
    """``target`` distinct ``(src, dst)`` pairs (fewer if a few rounds of draws cannot find them):
    sources drawn with ``sources``'s cumulative weights, destinations by ``draw_targets(src)``;
    sorted by source."""
    keys = np.empty(0, dtype=np.int64)
    drawn = int(target * 1.15) + 16  # some draws repeat a pair: the first round draws a few % more
    for _ in range(_DRAW_ROUNDS):
        src = np.minimum(np.searchsorted(sources, rng.random(drawn) * sources[-1], side="right"), len(sources) - 1)
        dst = draw_targets(src)
        new = src * n_dst + dst
        keys = np.union1d(keys, new[src != dst] if no_loops else new)
        if len(keys) >= target:
            break
        drawn = 2 * (target - len(keys)) + 16
    if len(keys) > target:
        keys = np.sort(rng.choice(keys, size=target, replace=False))
    return np.stack([keys // n_dst, keys % n_dst], axis=1)


def _years(rng: np.random.Generator, n: int) -> np.ndarray:
    """A year per paper with ogbn-mag's split shares: 2019 test, 2018 valid, 2010-2017 train
    (growing output, as publication counts grow)."""
    total = sum(MAG_SPLIT.values())
    n_test = max(1, round(n * MAG_SPLIT["test"] / total))
    n_valid = max(1, round(n * MAG_SPLIT["valid"] / total))
    train_years = np.arange(FIRST_YEAR, VALID_YEAR)
    shares = np.linspace(1.0, 2.0, len(train_years))
    years = np.concatenate([rng.choice(train_years, size=n - n_test - n_valid, p=shares / shares.sum()),
                            np.full(n_valid, VALID_YEAR), np.full(n_test, TEST_YEAR)])
    return rng.permutation(years).astype(np.int64)


def time_split(years: np.ndarray) -> dict[str, np.ndarray]:
    """ogbn-mag's split of papers by year: before 2018 train, 2018 valid, 2019 (and later) test."""
    return {"train": np.flatnonzero(years < VALID_YEAR), "valid": np.flatnonzero(years == VALID_YEAR),
            "test": np.flatnonzero(years >= TEST_YEAR)}


def _features(rng: np.random.Generator, venue: np.ndarray, p: SynthHeteroParams) -> np.ndarray:
    """``feature_signal * centroid[venue] + N(0, I)``, float32."""
    centroids = rng.standard_normal((p.num_classes, p.feat_dim))
    centroids *= p.feature_signal / np.linalg.norm(centroids, axis=1, keepdims=True)
    feat = rng.standard_normal((len(venue), p.feat_dim), dtype=np.float32)
    feat += centroids[venue].astype(np.float32)
    return feat


def generate_mag_like(params: SynthHeteroParams) -> TypedArrays:
    """The arrays of an ogbn-mag-shaped graph (see the module docstring).

    Raises:
        DatasetError: invalid parameters.
    """
    p = params
    validate_params(p)
    rng = np.random.default_rng(p.seed)
    n = p.counts()
    venue_share = np.exp(_VENUE_SIGMA * rng.standard_normal(p.num_classes))
    venue_share /= venue_share.sum()
    venue = rng.choice(p.num_classes, size=n[PAPER], p=venue_share)
    # Every type's home venues follow the venues' sizes; weights give each its degree.
    home = {t: rng.choice(p.num_classes, size=n[t], p=venue_share) for t in (AUTHOR, FIELD, INSTITUTION)}
    weight = {t: node_weights(rng, n[t], MAG_EDGES[r] / MAG_NODES[t], _EXPONENT[t])
              for t, r in ((PAPER, WRITES), (AUTHOR, WRITES), (FIELD, HAS_TOPIC), (INSTITUTION, AFFILIATED))}
    cited = node_weights(rng, n[PAPER], MAG_EDGES[CITES] / MAG_NODES[PAPER], _EXPONENT["cited"])
    paper_cum = np.cumsum(weight[PAPER])
    sampler = {t: _CommunitySampler(weight[t], home[t], p.num_classes) for t in (AUTHOR, FIELD, INSTITUTION)}
    cited_sampler = _CommunitySampler(cited, venue, p.num_classes)
    target = {r: max(int(round(m * p.scale)), 1) for r, m in MAG_EDGES.items()}
    h = p.homophily
    papers_authors = _edges(rng, target[WRITES], paper_cum,
                            lambda s: sampler[AUTHOR].draw(rng, venue[s], h), n[AUTHOR])
    edges = {
        WRITES: papers_authors[:, ::-1],  # drawn paper-first (authors per paper), stored author -> paper
        CITES: _edges(rng, target[CITES], paper_cum, lambda s: cited_sampler.draw(rng, venue[s], h), n[PAPER],
                      no_loops=True),
        HAS_TOPIC: _edges(rng, target[HAS_TOPIC], paper_cum, lambda s: sampler[FIELD].draw(rng, venue[s], h),
                          n[FIELD]),
        AFFILIATED: _edges(rng, target[AFFILIATED], np.arange(1, n[AUTHOR] + 1, dtype=np.float64),
                           lambda s: sampler[INSTITUTION].draw(rng, home[AUTHOR][s], h * _INSTITUTION_HOMOPHILY_SHARE),
                           n[INSTITUTION]),
    }
    years = _years(rng, n[PAPER])
    return TypedArrays(
        num_nodes=n, edges={r: edges[r] for r in MAG_EDGES}, feat={PAPER: _features(rng, venue, p)},
        labels={PAPER: venue}, num_classes=p.num_classes, split=time_split(years), year={PAPER: years})


def write_synthetic_hetero_dataset(root: str | os.PathLike, name: str, params: SynthHeteroParams) -> Path:
    """Generate an ogbn-mag-shaped graph and write it in OGB's heterogeneous layout.

    Returns:
        The dataset directory.

    Raises:
        DatasetError: invalid parameters.
    """
    arrays = generate_mag_like(params)
    info = {"generator": GENERATOR, "params": asdict(params),
            "num_edges": {":".join(r): int(len(e)) for r, e in arrays.edges.items()}}
    return write_hetero_dataset(root, name, arrays, info=info)
