"""Synthetic node-classification graphs: power-law degrees, class communities, noisy features.

The generator exists so that training can be tested and benchmarked at any scale (up to
ogbn-products size) on machines that cannot download OGB. Its graphs are built to behave like real
citation / co-purchase graphs in the ways that matter to a GNN trainer:

* **Degrees follow a power law** (Chung-Lu model): every node gets a weight drawn from a Pareto
  distribution and edge endpoints are drawn proportionally to weight, so there are hubs that stress
  neighbour sampling, and many low-degree nodes whose own features carry most of the information.
* **Edges are homophilous**: a share ``homophily`` of the edges joins a node to another node of its
  own (true) class, the rest join different classes; targets are again drawn by weight, so hubs
  attract edges from every class. The measured edge homophily equals the parameter (up to rounding)
  unless the graph is too dense to hold that many distinct within-class pairs.
* **Features are only weakly informative on their own**: a class centroid scaled by
  ``feature_signal`` plus unit Gaussian noise. A model that ignores the graph (MLP) is stuck well
  below what a model that averages neighbours (GraphSAGE) reaches, which is the gap a GNN trainer
  has to demonstrate.
* **Labels carry a little noise** (``label_noise``): as in real data, no model reaches 100 %.

Everything is vectorised NumPy and edges are drawn in fixed-size chunks, so ogbn-products scale
(2.45 M nodes, ~62 M undirected edges, 100-d features) is generated in under a minute within about 4
GB of memory. Same parameters and seed give byte-identical arrays.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from largegraph.data.dataset_format import LINK_SPLIT_STYLES, SPLITS, TRAIN
from largegraph.data.link_split import build_link_split
from largegraph.data.ogb_writer import write_link_dataset, write_node_dataset
from largegraph.data.synthetic_edges import EdgeSampler, class_sizes, node_weights, sample_edges
from largegraph.core.errors import DatasetError

GENERATOR = "largegraph.synthetic"

# Rows of the feature matrix handled at a time when adding class centroids (bounds the temporary).
_FEAT_CHUNK = 1 << 18


@dataclass
class SynthNodeParams:
    """Settings of a synthetic node-classification graph (CLI flag names in brackets).

    Attributes:
        num_nodes: number of nodes N (``--nodes``).
        avg_degree: mean degree after symmetrisation; the graph has ``round(N * avg_degree / 2)``
            undirected edges (``--avg-degree``).
        num_classes: number of classes (``--classes``).
        feat_dim: feature dimension (``--feat-dim``).
        homophily: fraction of edges whose endpoints share the true class (``--homophily``).
        feature_signal: length of the class centroid added to unit-variance Gaussian noise; the
            default makes features alone worth roughly 50 % accuracy with 8 classes
            (``--feature-signal``).
        label_noise: fraction of nodes whose observed label is replaced by a different, random class;
            the best achievable accuracy is about ``1 - label_noise`` (``--label-noise``).
        degree_exponent: exponent gamma of the power-law degree distribution P(k) ~ k^-gamma
            (``--degree-exponent``).
        split_ratios: train/valid/test shares of all nodes (``--split-ratios``).
        seed: random seed; the same parameters and seed give identical graphs (``--seed``).
    """

    num_nodes: int = 50_000
    avg_degree: float = 20.0
    num_classes: int = 8
    feat_dim: int = 64
    homophily: float = 0.8
    feature_signal: float = 1.5
    label_noise: float = 0.02
    degree_exponent: float = 2.5
    split_ratios: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 0


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(float(value))


def validate_params(params: SynthNodeParams) -> None:
    """Reject parameters that cannot give a sensible graph.

    Args:
        params: the generator settings.

    Raises:
        DatasetError: one line naming the offending CLI flag.
    """
    p = params
    if not _is_int(p.num_classes) or p.num_classes < 2:
        raise DatasetError(f"--classes must be an integer >= 2, got {p.num_classes!r}")
    if not _is_int(p.num_nodes) or p.num_nodes < 10 * p.num_classes:
        raise DatasetError(f"--nodes must be an integer >= 10 x --classes ({10 * p.num_classes}), got {p.num_nodes!r}")
    # Undirected pairs are encoded as min * N + max in int64; 2**31 nodes keeps that far from overflow.
    if p.num_nodes >= 2**31:
        raise DatasetError(f"--nodes must be below 2**31, got {p.num_nodes}")
    if not _is_number(p.avg_degree) or not 0 < p.avg_degree < p.num_nodes - 1:
        raise DatasetError(f"--avg-degree must be > 0 and < --nodes - 1 ({p.num_nodes - 1}), got {p.avg_degree!r}")
    if round(p.num_nodes * p.avg_degree / 2) < 1:
        raise DatasetError(f"--avg-degree {p.avg_degree} gives no edges for {p.num_nodes} nodes; raise it")
    if not _is_int(p.feat_dim) or p.feat_dim < 1:
        raise DatasetError(f"--feat-dim must be an integer >= 1, got {p.feat_dim!r}")
    if not _is_number(p.homophily) or not 0 <= p.homophily <= 1:
        raise DatasetError(f"--homophily must lie in [0, 1], got {p.homophily!r}")
    if not _is_number(p.feature_signal) or p.feature_signal < 0:
        raise DatasetError(f"--feature-signal must be a finite number >= 0, got {p.feature_signal!r}")
    if not _is_number(p.label_noise) or not 0 <= p.label_noise < 1:
        raise DatasetError(f"--label-noise must lie in [0, 1), got {p.label_noise!r}")
    # Above 2 the power law has a finite mean, so avg_degree fixes the scale; real graphs sit at 2-3.
    if not _is_number(p.degree_exponent) or p.degree_exponent <= 2:
        raise DatasetError(f"--degree-exponent must be a finite number > 2, got {p.degree_exponent!r}")
    ratios = tuple(p.split_ratios) if isinstance(p.split_ratios, (tuple, list)) else ()
    if len(ratios) != 3 or not all(_is_number(r) and r > 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise DatasetError(f"--split-ratios must be three positive numbers (train, valid, test) summing to 1, "
                           f"got {p.split_ratios!r}")
    if min(ratios) * p.num_nodes < 1:
        raise DatasetError(f"--split-ratios {ratios} leave an empty split for {p.num_nodes} nodes")
    if not _is_int(p.seed) or p.seed < 0:
        raise DatasetError(f"--seed must be an integer >= 0, got {p.seed!r}")


def _check_density(n: int, sizes: np.ndarray, target_same: int, target_diff: int, p: SynthNodeParams) -> None:
    """Refuse graphs that would need most of all possible within- or cross-class pairs.

    Weighted sampling of distinct pairs slows down and stops following the degree weights as a pool
    of pairs fills up; beyond half of a pool the graph would be neither power-law nor the requested
    size, so it is better to say so than to return something else.
    """
    cap_same = int((sizes * (sizes - 1) // 2).sum())
    cap_diff = n * (n - 1) // 2 - cap_same
    if target_same > cap_same // 2 or target_diff > cap_diff // 2:
        raise DatasetError(
            f"--avg-degree {p.avg_degree} is too dense for --nodes {n} with --classes {p.num_classes} and "
            f"--homophily {p.homophily}: it needs {target_same} of {cap_same} possible within-class pairs and "
            f"{target_diff} of {cap_diff} cross-class pairs (at most half of each); lower --avg-degree"
        )


def _features(rng: np.random.Generator, true_class: np.ndarray, num_classes: int, dim: int,
              signal: float) -> np.ndarray:
    """``signal * centroid[class] + N(0, I)`` as float32, built in place to avoid an (N, D) temporary."""
    centroids = rng.standard_normal((num_classes, dim))
    # Unit length, so feature_signal is exactly the class mean's distance from the origin in noise stds.
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    centroids = (signal * centroids).astype(np.float32)
    feat = rng.standard_normal((len(true_class), dim), dtype=np.float32)
    for start in range(0, len(true_class), _FEAT_CHUNK):
        stop = start + _FEAT_CHUNK
        feat[start:stop] += centroids[true_class[start:stop]]
    return feat


def _split(rng: np.random.Generator, n: int, ratios: tuple[float, float, float]) -> dict[str, np.ndarray]:
    perm = rng.permutation(n)
    n_train = int(round(ratios[0] * n))
    n_valid = int(round(ratios[1] * n))
    # Sorted ids read better in files and make gathers cache-friendlier; the split stays random.
    parts = np.split(perm, [n_train, n_train + n_valid])
    return {part: np.sort(ids) for part, ids in zip(SPLITS, parts)}


def generate_node_graph(params: SynthNodeParams) -> dict:
    """Generate a synthetic node-classification graph.

    Each part (class sizes, degrees, edges, features, label noise, split) draws from its own random
    stream spawned from ``seed``, so that e.g. changing ``feat_dim`` leaves the edges unchanged.

    Args:
        params: generator settings (validated first).

    Returns:
        A dict with
        ``edges`` ``(E, 2)`` int64 undirected pairs, each stored once as ``(min, max)``, sorted, no
        self-loops; ``feat`` ``(N, D)`` float32; ``labels`` ``(N,)`` int64 observed labels (with
        label noise); ``true_labels`` ``(N,)`` int64 classes the edges and features were built from;
        ``split`` ``train``/``valid``/``test`` -> sorted int64 node ids; ``num_classes``; ``info``:
        generator name, the parameters and measured statistics (edge homophily, degrees, ...).

    Raises:
        DatasetError: invalid parameters (the message names the CLI flag).
    """
    validate_params(params)
    p = params
    n, num_classes = int(p.num_nodes), int(p.num_classes)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(int(p.seed)).spawn(6)]
    rng_class, rng_weight, rng_edge, rng_feat, rng_label, rng_split = streams

    sizes = class_sizes(rng_class, n, num_classes)
    true_class = rng_class.permutation(np.repeat(np.arange(num_classes, dtype=np.int64), sizes))
    weights = node_weights(rng_weight, n, float(p.avg_degree), float(p.degree_exponent))

    target = int(round(n * p.avg_degree / 2))
    # Within- and cross-class edges are drawn as two separate pools with fixed sizes. Drawing each
    # edge's kind at random and then deduplicating would lose more within-class edges (the smaller
    # pool of pairs repeats more often) and bias homophily low, by several points on small graphs.
    target_same = int(round(target * p.homophily))
    _check_density(n, sizes, target_same, target - target_same, p)
    sampler = EdgeSampler(weights, true_class, num_classes)
    same_keys, drawn_same = sample_edges(rng_edge, sampler, n, target_same, same_class=True)
    diff_keys, drawn_diff = sample_edges(rng_edge, sampler, n, target - target_same, same_class=False)
    del sampler, weights
    drawn = drawn_same + drawn_diff
    # The two pools are disjoint (a pair is either within a class or not), so no deduplication.
    keys = np.concatenate([same_keys, diff_keys])
    del same_keys, diff_keys
    keys.sort()
    edges = np.empty((len(keys), 2), dtype=np.int64)
    np.floor_divide(keys, n, out=edges[:, 0])
    np.remainder(keys, n, out=edges[:, 1])
    del keys

    feat = _features(rng_feat, true_class, num_classes, int(p.feat_dim), float(p.feature_signal))

    labels = true_class.copy()
    flip = np.flatnonzero(rng_label.random(n) < p.label_noise)
    # A *different* class, so that label_noise is exactly the share of wrong labels.
    labels[flip] = (labels[flip] + rng_label.integers(1, num_classes, size=len(flip))) % num_classes

    split = _split(rng_split, n, tuple(float(r) for r in p.split_ratios))

    degree = np.bincount(edges.ravel(), minlength=n)
    same_true = true_class[edges[:, 0]] == true_class[edges[:, 1]]
    same_obs = labels[edges[:, 0]] == labels[edges[:, 1]]
    info = {
        "generator": GENERATOR,
        "params": asdict(p),
        "num_nodes": n,
        "num_edges": int(len(edges)),
        "target_edges": target,
        "target_within_class_edges": target_same,
        "candidate_edges_drawn": int(drawn),
        "edge_homophily": float(same_true.mean()) if len(edges) else float("nan"),
        "observed_edge_homophily": float(same_obs.mean()) if len(edges) else float("nan"),
        "mean_degree": float(degree.mean()),
        "max_degree": int(degree.max()),
        "median_degree": float(np.median(degree)),
        "isolated_nodes": int((degree == 0).sum()),
        "class_sizes": [int(s) for s in sizes],
        "noisy_labels": int(len(flip)),
    }
    return {
        "edges": edges,
        "feat": feat,
        "labels": labels,
        "true_labels": true_class,
        "split": split,
        "num_classes": num_classes,
        "info": info,
    }


def write_synthetic_node_dataset(root: str | os.PathLike, name: str, params: SynthNodeParams, *,
                                 raw_format: str = "auto") -> Path:
    """Generate a synthetic graph and write it in OGB's layout under ``root``.

    Args:
        root: directory holding dataset folders.
        name: dataset name (directory ``root/<name with - as _>``).
        params: generator settings.
        raw_format: ``csv``, ``binary`` or ``auto`` (binary for large graphs).

    Returns:
        The dataset directory; load it with ``load_dataset(DataConfig(name=name, root=root))``.

    Raises:
        DatasetError: invalid parameters or raw format.
    """
    data = generate_node_graph(params)
    return write_node_dataset(
        root, name,
        edges=data["edges"], num_nodes=int(params.num_nodes), feat=data["feat"], labels=data["labels"],
        num_classes=data["num_classes"], split=data["split"], raw_format=raw_format, info=data["info"],
    )


# ---------------------------------------------------------------------------------------------------
# Link prediction: the node generator's graph with held-out edges and sampled negatives.


@dataclass
class SynthLinkParams:
    """Settings of a synthetic link-prediction graph.

    The graph is the node generator's (power-law degrees, communities joined with ``homophily``);
    a random ``valid_ratio`` / ``test_ratio`` of its edges is held out and never enters the
    message-passing graph.

    Attributes:
        num_nodes: number of nodes N.
        avg_degree: mean degree of the full graph (before holding edges out).
        num_communities: number of communities (the node generator's classes).
        feat_dim: node feature dimension; 0 = featureless, like ogbl-ddi.
        homophily: fraction of edges inside a community.
        feature_signal: community centroid length in the features (as for node graphs).
        degree_exponent: power-law exponent of the degree distribution.
        valid_ratio: share of edges held out for validation.
        test_ratio: share of edges held out for testing.
        seed: random seed; same parameters and seed give identical arrays.
    """

    num_nodes: int = 10_000
    avg_degree: float = 20.0
    num_communities: int = 8
    feat_dim: int = 32
    homophily: float = 0.8
    feature_signal: float = 1.5
    degree_exponent: float = 2.5
    valid_ratio: float = 0.1
    test_ratio: float = 0.1
    seed: int = 0


def _node_params_for_links(p: SynthLinkParams) -> SynthNodeParams:
    if not _is_int(p.feat_dim) or p.feat_dim < 0:
        raise DatasetError(f"feat_dim must be an integer >= 0, got {p.feat_dim!r}")
    return SynthNodeParams(
        num_nodes=p.num_nodes, avg_degree=p.avg_degree, num_classes=p.num_communities,
        feat_dim=max(int(p.feat_dim), 1), homophily=p.homophily, feature_signal=p.feature_signal,
        label_noise=0.0, degree_exponent=p.degree_exponent, seed=p.seed,
    )


def generate_link_graph(params: SynthLinkParams, split_style: str = "edge", num_neg: int = 100,
                        num_edge_neg: int | None = None) -> dict:
    """Generate a synthetic link-prediction dataset.

    Args:
        params: generator settings.
        split_style: ``edge`` (collab/ddi style: ``edge`` + shared ``edge_neg`` pool per split) or
            ``source_target`` (citation2 style: ``source_node``, ``target_node`` and
            ``target_node_neg`` ``(E, num_neg)``).
        num_neg: negatives per positive in ``source_target`` style.
        num_edge_neg: negative pairs per valid/test split in ``edge`` style (default: as many as that
            split has positives).

    Returns:
        dict with ``edges_train`` ``(E_train, 2)`` (each undirected edge once, sorted), ``feat``
        (``(N, D)`` float32 or None), ``split`` (OGB's ``get_edge_split()`` shape, numpy int64),
        ``num_nodes``, ``communities`` and ``info``. Valid/test edges are never training edges;
        negatives are never edges of the full graph (any split) nor self-loops.

    Raises:
        DatasetError: invalid parameters.
    """
    p = params
    if split_style not in LINK_SPLIT_STYLES:
        raise DatasetError(f"split_style must be one of {LINK_SPLIT_STYLES}, got {split_style!r}")
    if not _is_int(num_neg) or num_neg < 1:
        raise DatasetError(f"num_neg must be an integer >= 1, got {num_neg!r}")
    if num_edge_neg is not None and (not _is_int(num_edge_neg) or num_edge_neg < 1):
        raise DatasetError(f"num_edge_neg must be an integer >= 1, got {num_edge_neg!r}")
    for key in ("valid_ratio", "test_ratio"):
        value = getattr(p, key)
        if not _is_number(value) or not 0 < value < 0.5:
            raise DatasetError(f"{key} must lie in (0, 0.5), got {value!r}")
    if p.valid_ratio + p.test_ratio >= 0.9:
        raise DatasetError("valid_ratio + test_ratio must leave at least 10 % of the edges for training")
    node = generate_node_graph(_node_params_for_links(p))
    n = int(p.num_nodes)
    edges = node["edges"]
    # The node generator's streams are spawned from seed; these come from a separate, fixed branch.
    rng_hold, rng_orient, rng_neg = (np.random.default_rng(s) for s in
                                     np.random.SeedSequence([int(p.seed), 0x11AC]).spawn(3))
    e = len(edges)
    n_valid = int(round(p.valid_ratio * e))
    n_test = int(round(p.test_ratio * e))
    if n_valid < 1 or n_test < 1 or e - n_valid - n_test < 1:
        raise DatasetError(f"{e} edges are too few to hold out valid_ratio {p.valid_ratio} and "
                           f"test_ratio {p.test_ratio}; raise num_nodes or avg_degree")
    valid_ids, test_ids, train_ids = np.split(rng_hold.permutation(e), [n_valid, n_valid + n_test])
    parts = dict(zip(SPLITS, (np.sort(train_ids), np.sort(valid_ids), np.sort(test_ids))))
    edges_train = edges[parts[TRAIN]]
    split = build_link_split(edges, parts, n, split_style, num_neg, num_edge_neg, rng_orient, rng_neg)
    info = {
        "generator": GENERATOR + ".link",
        "params": asdict(p),
        "split_style": split_style,
        "num_neg": int(num_neg) if split_style == "source_target" else None,
        "num_edge_neg": num_edge_neg,
        "num_nodes": n,
        "num_edges_total": int(e),
        "num_edges": {part: int(len(idx)) for part, idx in parts.items()},
        "edge_homophily": node["info"]["edge_homophily"],
        "mean_degree_full": node["info"]["mean_degree"],
        "max_degree_full": node["info"]["max_degree"],
    }
    return {
        "edges_train": edges_train,
        "feat": node["feat"] if p.feat_dim > 0 else None,
        "split": split,
        "num_nodes": n,
        "communities": node["true_labels"],
        "info": info,
    }


def write_synthetic_link_dataset(root: str | os.PathLike, name: str, params: SynthLinkParams,
                                 split_style: str = "edge", num_neg: int = 100, *,
                                 num_edge_neg: int | None = None, metric: str | None = None) -> Path:
    """Generate a synthetic link-prediction dataset and write it in OGB's linkproppred layout.

    Args:
        root, name, params: as for :func:`write_synthetic_node_dataset`.
        split_style: ``edge`` or ``source_target`` (see ``generate_link_graph``).
        num_neg: negatives per positive for ``source_target``.
        num_edge_neg: negative pairs per valid/test split for ``edge`` (default: #positives).
        metric: OGB metric; default ``hits@50`` for ``edge``, ``mrr`` for ``source_target``.

    Returns:
        The dataset directory; load it with ``largegraph.data.link.load_link_dataset(name, root)``.
    """
    data = generate_link_graph(params, split_style, num_neg, num_edge_neg)
    if metric is None:
        metric = "hits@50" if split_style == "edge" else "mrr"
    return write_link_dataset(
        root, name, edges_train=data["edges_train"], num_nodes=data["num_nodes"], feat=data["feat"],
        split=data["split"], split_style=split_style, metric=metric, directed=False, info=data["info"],
    )
