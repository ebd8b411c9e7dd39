"""Bring your own graph for link prediction: an edge list (and optional node features) becomes a
dataset in OGB's linkproppred layout, loaded by OGB's own link loader like every other link dataset.

The edges are split into train/valid/test by seeded ratios or, with a timestamp column, in time
order (the oldest edges train, the newest test). Held-out parts get seeded negatives in either OGB
split style: collab-style ``edge``/``edge_neg`` (Hits@K) or citation2-style
``source_node``/``target_node``/``target_node_neg`` (MRR). Readers, node ids and features are those
of :mod:`largegraph.data.input_files` and :mod:`largegraph.data.node_ids`; the held-out split with its
negatives is built by :func:`largegraph.data.link_split.build_link_split`, as for synthetic link graphs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from largegraph.data.input_files import PathLike, read_edges, read_features, require_file
from largegraph.data.node_ids import build_edges, feature_matrix, node_universe
from largegraph.data.node_import import check_dataset_name, import_record, ratio_counts, with_structural
from largegraph.data.dataset_format import LINK_SPLIT_STYLES, SPLITS
from largegraph.data.ogb_writer import write_link_dataset
from largegraph.data.link_split import build_link_split
from largegraph.core.errors import DatasetError

DEFAULT_METRIC = {"edge": "hits@50", "source_target": "mrr"}


def import_link_dataset(
    *,
    name: str,
    root: PathLike,
    edges: PathLike,
    features: PathLike | None = None,
    src_col: str | None = None,
    dst_col: str | None = None,
    id_col: str = "id",
    time_col: str | None = None,
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    split_style: str = "edge",
    metric: str | None = None,
    num_neg: int = 100,
    directed: bool = False,
    seed: int = 0,
    structural: str | None = None,
    pe_dim: int = 8,
) -> Path:
    """Import a link-prediction dataset from an edge list into ``root`` in OGB's layout.

    Args:
        name, root, edges, features, src_col, dst_col, id_col, directed, structural, pe_dim: as for
            :func:`largegraph.data.node_import.import_node_dataset` (a features CSV's label column, if any,
            is read as a feature unless it is named ``label``).
        time_col: an edges column of numeric timestamps: the split follows time (an edge given more
            than once counts from its first appearance) and never cuts through one timestamp.
        split_ratios: train/valid/test fractions of the (deduplicated) edges.
        split_style: ``edge`` (collab style: a shared pool of negative pairs per held-out part, as
            many as it has positives) or ``source_target`` (citation2 style: ``num_neg`` negative
            targets per held-out edge).
        metric: OGB's metric; default ``hits@50`` for ``edge``, ``mrr`` for ``source_target``.
        seed: seeds the random split and the negatives.

    Returns:
        The dataset directory (its ``largegraph.json`` records what happened to the input).

    Raises:
        DatasetError: a missing or malformed input or a split that comes out empty, in one line.
    """
    check_dataset_name(name)
    if split_style not in LINK_SPLIT_STYLES:
        raise DatasetError(f"split style must be one of {', '.join(LINK_SPLIT_STYLES)}, got {split_style!r}")
    if num_neg < 1:
        raise DatasetError(f"--num-neg must be at least 1, got {num_neg}")
    metric = metric or DEFAULT_METRIC[split_style]
    edges_path = require_file(edges, "edges")
    feat_path = require_file(features, "features") if features is not None else None

    src, dst, times = read_edges(edges_path, src_col, dst_col, time_col)
    feats = read_features(feat_path, id_col, "label") if feat_path is not None else None
    nodes = node_universe(src, dst, [], feats, feat_path)
    edge_array, stats, edge_times = build_edges(nodes, src, dst, directed, times)
    feat = feature_matrix(nodes, feats, feat_path) if feats is not None else None
    feat, node_input = with_structural(feat, edge_array, len(nodes), structural, pe_dim, seed)

    rng_split, rng_orient, rng_neg = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    if edge_times is None:
        parts = _random_parts(len(edge_array), split_ratios, rng_split)
        how = {"ratios": [float(r) for r in split_ratios], "seed": int(seed)}
    else:
        parts, how = _time_parts(edge_times, split_ratios, time_col)
    split = build_link_split(edge_array, parts, len(nodes), split_style, num_neg, None, rng_orient, rng_neg)
    sizes = {part: int(len(idx)) for part, idx in parts.items()}
    info = {
        **import_record(edges_path, feat_path, node_input, nodes, directed),
        "split": how,
        "split_style": split_style,
        "num_neg": int(num_neg) if split_style == "source_target" else None,
        "num_edges": sizes,
        **stats,
    }
    return write_link_dataset(
        root, name, edges_train=edge_array[parts["train"]], num_nodes=len(nodes), feat=feat, split=split,
        split_style=split_style, metric=metric, directed=directed, info=info,
        mappings={"nodeidx2id": nodes.frame()})


def _random_parts(num_edges: int, ratios, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n_train, n_valid, n_test = ratio_counts(ratios, num_edges, "edge(s)",
                                            "import a larger edge list or change --split-ratios")
    order = rng.permutation(num_edges)
    cuts = np.split(order[:n_train + n_valid + n_test], [n_train, n_train + n_valid])
    return {part: np.sort(ids) for part, ids in zip(SPLITS, cuts)}


def _time_parts(times: np.ndarray, ratios, time_col: str) -> tuple[dict[str, np.ndarray], dict]:
    """Train before the valid cut-off time, valid before the test cut-off, test from it on; the
    cut-offs are the timestamps at the ratios' positions in time order, so that edges with the same
    timestamp always land in the same part."""
    n_train, n_valid, _ = ratio_counts(ratios, len(times), "edge(s)",
                                       "import a larger edge list or change --split-ratios")
    ordered = np.sort(times, kind="stable")
    valid_from, test_from = ordered[n_train], ordered[n_train + n_valid]
    masks = {"train": times < valid_from, "valid": (times >= valid_from) & (times < test_from),
             "test": times >= test_from}
    for part, mask in masks.items():
        if not mask.any():
            raise DatasetError(f"splitting by timestamp column {time_col!r} leaves the {part} split empty: too many "
                               f"edges share timestamp {_plain(valid_from if part != 'test' else test_from)} at the "
                               f"cut-off; change --split-ratios or use finer timestamps")
    parts = {part: np.flatnonzero(mask) for part, mask in masks.items()}
    return parts, {"time_col": time_col, "ratios": [float(r) for r in ratios],
                   "valid_from": _plain(valid_from), "test_from": _plain(test_from)}


def _plain(value: float) -> float | int:
    """A timestamp as JSON and messages should show it (2019, not 2019.0)."""
    return int(value) if float(value).is_integer() else float(value)
