"""Bring your own graph: import a node-classification dataset from plain files.

``largegraph data import`` reads an edge list (CSV), node features (CSV, ``.npy``, a SNAP/MUSAE-style
``.json`` of active feature indices or a SciPy sparse ``.npz``), node labels (CSV) and a split (seeded ratios or three id lists), and
writes them through :func:`largegraph.data.ogb_writer.write_node_dataset`, so the result loads with OGB's
own loader like any other dataset.

Node ids in the files are arbitrary (integers or strings). Every id seen in the edges, features or labels
becomes a node; nodes are numbered 0..N-1 in sorted order of their original id (numeric order when every
id is an integer) and ``mapping/nodeidx2id.csv.gz`` keeps the original ids. Every problem with the input
files is reported as a one-line :class:`DatasetError` naming the file (and column or line) at fault.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from largegraph.data.input_files import (PathLike, FeatureFile, read_edges, read_features, read_labels,
                                         read_split_files, require_file)
from largegraph.data.dataset_format import SPLITS
from largegraph.data.node_ids import (NodeIds, all_integers, build_edges, feature_matrix, first_duplicate,
                                      node_universe, to_int)
from largegraph.data.ogb_writer import write_node_dataset
from largegraph.core.errors import DatasetError

FEATURE_STORAGE = ("auto", "dense", "sparse")


def _encode_labels(nodes: NodeIds, ids: np.ndarray, values: np.ndarray,
                   path: Path) -> tuple[np.ndarray, int, pd.DataFrame | None]:
    """Return (labels with -1 for unlabelled, num_classes, labelidx2label table or None)."""
    dup = first_duplicate(nodes.canonical(ids))
    if dup is not None:
        raise DatasetError(f"labels file {path} lists node {dup!r} more than once; keep one label per node")
    labelled = values != ""
    ids, values = ids[labelled], values[labelled]
    labels = np.full(len(nodes), -1, dtype=np.int64)
    idx = nodes.lookup(ids)
    if all_integers(values):
        numbers = to_int(values, f"labels file {path}")
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
    for part_no, (part, (path, lines, raw)) in enumerate(read_split_files(split_dir).items()):
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


def store_sparse(feature_storage: str, feats: FeatureFile) -> bool:
    """Whether ``--feature-storage`` (``auto``/``dense``/``sparse``) stores these features sparse."""
    if feature_storage not in FEATURE_STORAGE:
        raise DatasetError(f"feature storage must be one of {', '.join(FEATURE_STORAGE)}, got {feature_storage!r}")
    return feats.sparse if feature_storage == "auto" else feature_storage == "sparse"


def import_record(edges_path: Path, feat_path: Path | None, node_input: dict, nodes: NodeIds,
                  directed: bool) -> dict:
    """The provenance both imports record in ``largegraph.json``: the input files, the model's node
    input, the id type and whether edges keep their direction."""
    return {
        "source": "import",
        "edges": str(edges_path.absolute()),
        "features": str(feat_path.absolute()) if feat_path is not None else None,
        "node_input": node_input,
        "id_type": "int" if nodes.integer else "str",
        "directed": bool(directed),
    }


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
    label_ids, label_values = read_labels(label_path, id_col, label_col)
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
        **import_record(edges_path, feat_path, node_input, nodes, directed),
        "feature_format": feats.fmt if feats is not None else None,
        "feature_storage": ("sparse" if sparse else "dense") if feats is not None else None,
        "labels": str(label_path.absolute()),
        "split": ({"dir": str(Path(split_dir).expanduser().absolute())} if split_dir is not None
                  else {"ratios": [float(r) for r in split_ratios], "seed": int(seed)}),
        "labelled_nodes": int((node_labels >= 0).sum()),
        **edge_stats,
    }
    return write_node_dataset(
        root, name, edges=edge_array, num_nodes=len(nodes), feat=feat, labels=node_labels,
        num_classes=num_classes, split=split, raw_format="auto", mappings=mappings, info=info,
    )
