"""The dataset format: the names of a dataset directory's files, its metadata and its split keys.

Every file and folder name, the metadata file, the split names and the link split keys are spelled
here and nowhere else: the readers (``ogb``, ``link``) and the writers (``ogb_writer``, ``synthetic``,
``node_import``, ``link_import``, ``planetoid``) use these names, so a reader can never look for a file
a writer named differently.

A dataset directory ``<root>/<name with - replaced by _>/`` holds::

    RELEASE_v1.txt                 the release marker OGB checks (without it OGB prompts on stdin)
    largegraph.json                OGB's meta_dict for this dataset plus our provenance
    raw/edge.csv.gz ...            csv raw format: OGB's csv.gz files (edges, counts, features, labels)
    raw/data.npz, node-label.npz   binary raw format for large graphs (as ogbn-papers100M)
    raw/node-feat-csr.npz          sparse node features (CSR, scipy.sparse.save_npz), read beside OGB's
    split/largegraph/{train,valid,test}.csv.gz   node datasets: node ids per part
    split/largegraph/{train,valid,test}.pt       link datasets: torch.save'd dicts of int64 tensors,
                                   read by OGB's DglLinkPropPredDataset.get_edge_split()
    mapping/*.csv.gz               optional: original ids, label names
    processed/                     OGB's cache, written on the first load, and largegraph's
                                   memory-mappable cache of the prepared graph (largegraph-<key>/)

A link dataset's ``raw/edge.csv.gz`` holds the TRAINING edges only (the message-passing graph), each
undirected edge once; OGB adds the reverse edges itself (meta ``add_inverse_edge``), as for
ogbl-ddi/collab/ppa.

Official OGB datasets use the same format with their own split folder (``split/time``...), and may
carry OGB's cached ``split_dict.pt`` instead of the per-part files.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from largegraph.core.errors import DatasetError

SPLITS = ("train", "valid", "test")
TRAIN = SPLITS[0]
HELDOUT = SPLITS[1:]  # the parts that must never reach the message-passing graph

META_FILE = "largegraph.json"
META_FORMAT = "largegraph-ogb/1"
RELEASE_VERSION = "1"  # the OGB release version our writers stamp

RAW_DIR = "raw"
SPLIT_DIR = "split"
MAPPING_DIR = "mapping"
SPLIT_NAME = "largegraph"  # our datasets' folder under split/ (OGB meta "split")
SPLIT_DICT = "split_dict.pt"  # OGB's cached split; when present OGB reads nothing else in the folder
PROCESSED_CACHE = Path("processed") / "dgl_data_processed"
LOCK_FILE = ".largegraph.lock"
# largegraph's processed cache (largegraph.data.cache): one folder per fingerprint of the raw files and
# the preparation settings, ``processed/largegraph-<key>/`` holding plain .npy arrays and a manifest.
GRAPH_CACHE_DIR = "processed"
GRAPH_CACHE_PREFIX = "largegraph-"
GRAPH_CACHE_MANIFEST = "manifest.json"
GRAPH_CACHE_LOCK = ".largegraph-cache.lock"

EDGE_CSV = "edge.csv.gz"
NUM_NODES_CSV = "num-node-list.csv.gz"
NUM_EDGES_CSV = "num-edge-list.csv.gz"
NODE_FEAT_CSV = "node-feat.csv.gz"
NODE_LABEL_CSV = "node-label.csv.gz"
GRAPH_NPZ = "data.npz"
NODE_LABEL_NPZ = "node-label.npz"
# Sparse node features (largegraph.data.sparse), beside OGB's files: SciPy's save_npz CSR layout.
# OGB's meta then says the dataset has no node attributes; largegraph.json's ``feature_storage``
# is ``sparse`` and ``feat_dim``/``feat_nnz`` give its shape.
NODE_FEAT_SPARSE = "node-feat-csr.npz"

# Typed (heterogeneous) datasets: OGB's layout of ogbn-mag. largegraph.json's ``task`` is ``hetero``
# (one typed graph serves node classification on its labelled type and link prediction on any relation).
HETERO_TASK = "hetero"
NUM_NODE_DICT_CSV = "num-node-dict.csv.gz"  # a header of node types, one row of counts
TRIPLETS_CSV = "triplet-type-list.csv.gz"  # one (source type, relation, destination type) a row
RELATIONS_DIR = "relations"  # raw/relations/<src>___<rel>___<dst>/{edge,num-edge-list}.csv.gz
NODE_FEAT_DIR = "node-feat"  # raw/node-feat/<type>/node-feat.csv.gz and OGB's additional node files
NODE_LABEL_DIR = "node-label"  # raw/node-label/<type>/node-label.csv.gz
HAS_LABEL_CSV = "nodetype-has-label.csv.gz"
HAS_SPLIT_CSV = "nodetype-has-split.csv.gz"  # in split/<name>/, beside one folder of parts per type
NODE_YEAR = "node_year"  # OGB's "additional node file" holding a year per node (ogbn-mag's papers)


def relation_dir_name(relation: tuple[str, str, str]) -> str:
    """OGB's folder name of a relation: ``author___writes___paper``."""
    return "___".join(relation)


# ------------------------------------------------------------------------------------------ paths


def dataset_dir_name(name: str) -> str:
    """OGB's directory naming: ``ogbn-arxiv`` lives in ``ogbn_arxiv``."""
    return "_".join(name.split("-"))


def dataset_dir(root: str | os.PathLike, name: str) -> Path:
    """The directory of dataset ``name`` under ``root``."""
    return Path(root) / dataset_dir_name(name)


def official_dataset_dir(root: Path, name: str) -> Path:
    """Where OGB's loader looks for an official dataset: it prefers a previously downloaded
    ``<name>_dgl`` folder when one exists, and so do we."""
    plain = dataset_dir(root, name)
    dgl_variant = plain.with_name(plain.name + "_dgl")
    return dgl_variant if dgl_variant.exists() else plain


def release_marker(directory: Path, version: str = RELEASE_VERSION) -> Path:
    """The ``RELEASE_v<version>.txt`` file whose absence makes OGB ask to re-download."""
    return directory / f"RELEASE_v{version}.txt"


def split_dir(directory: Path, split_name: str = SPLIT_NAME) -> Path:
    """The folder holding one split's files (``split_name``: OGB meta's ``split``)."""
    return directory / SPLIT_DIR / split_name


def split_file(task: str, part: str) -> str:
    """File name of one split part: node ids as csv.gz (node), a dict of tensors as .pt (link)."""
    return f"{part}.csv.gz" if task == "node" else f"{part}.pt"


def raw_files(task: str, binary: bool) -> tuple[str, ...]:
    """The raw files OGB's loader for ``task`` cannot do without (it would try to download them)."""
    if not binary:
        return (EDGE_CSV,)
    return (GRAPH_NPZ, NODE_LABEL_NPZ) if task == "node" else (GRAPH_NPZ,)


# --------------------------------------------------------------------------------------- metadata


def format_meta(name: str, task: str, info: dict | None, **fields) -> str:
    """The text of ``largegraph.json``: format, name, task (``node``/``link``), ``fields`` (OGB's
    ``ogb_meta`` and sizes), the creation time and the writer's provenance ``info``."""
    meta = {"format": META_FORMAT, "name": name, "task": task, **fields,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "info": info or {}}
    return json.dumps(meta, indent=2) + "\n"


def read_meta(directory: Path) -> dict:
    """Read ``largegraph.json`` of a dataset directory (raises DatasetError if unreadable)."""
    path = directory / META_FILE
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}; rewrite the dataset with `largegraph data`") from None
    if meta.get("format") != META_FORMAT:
        raise DatasetError(f"{path} has format {meta.get('format')!r}, expected {META_FORMAT!r}; rewrite the dataset")
    return meta


# ----------------------------------------------------------------------------- link split schema
#
# A link split is OGB's ``get_edge_split()``: train/valid/test -> dict of arrays, in one of two styles.
# ``edge`` (collab/ddi): ``edge`` (E, 2) positives, plus a shared pool ``edge_neg`` (E', 2) in valid/test.
# ``source_target`` (citation2): ``source_node``/``target_node`` (E,), plus ``target_node_neg`` (E, K)
# in valid/test, each positive ranked against its own K negatives.

EDGE, EDGE_NEG = "edge", "edge_neg"
SOURCE_NODE, TARGET_NODE, TARGET_NODE_NEG = "source_node", "target_node", "target_node_neg"
LINK_SPLIT_STYLES = ("edge", "source_target")
_POSITIVE_KEYS = {"edge": (EDGE,), "source_target": (SOURCE_NODE, TARGET_NODE)}
_NEGATIVE_KEY = {"edge": EDGE_NEG, "source_target": TARGET_NODE_NEG}
# Keys OGB keeps as floats (ogbl-collab's edge weights and years); every other key holds node ids.
FLOAT_SPLIT_KEYS = ("weight", "year")

# The metrics OGB's linkproppred Evaluator computes, each with the official homogeneous dataset whose
# Evaluator is used to score ours (an Evaluator takes only an official name).
LINK_METRIC_EVALUATORS = {
    "hits@20": "ogbl-ddi",
    "hits@50": "ogbl-collab",
    "hits@100": "ogbl-ppa",
    "mrr": "ogbl-citation2",
    "rocauc": "ogbl-vessel",
}
# mrr ranks each positive against its own K negatives; hits@K and rocauc compare positive edges
# with one shared pool of negative edges.
LINK_METRIC_STYLE = {"mrr": "source_target", "hits@20": "edge", "hits@50": "edge", "hits@100": "edge",
                     "rocauc": "edge"}


def link_split_keys(split_style: str, part: str) -> list[str]:
    """The keys part ``part`` of a ``split_style`` split must have (negatives only in valid/test)."""
    return list(_POSITIVE_KEYS[split_style]) + ([_NEGATIVE_KEY[split_style]] if part in HELDOUT else [])


def split_style_of(part: dict) -> str | None:
    """The style whose positive keys ``part`` holds, or None."""
    for style, keys in _POSITIVE_KEYS.items():
        if all(k in part for k in keys):
            return style
    return None


def pairs_as_part(pairs: np.ndarray, split_style: str) -> dict[str, np.ndarray]:
    """An ``(E, 2)`` array of positive edges as one split part of ``split_style``."""
    if split_style == "edge":
        return {EDGE: pairs}
    return {SOURCE_NODE: pairs[:, 0], TARGET_NODE: pairs[:, 1]}


def positive_pairs(part: dict, split_style: str) -> np.ndarray:
    """The positive edges of one split part as an ``(E, 2)`` int64 array."""
    if split_style == "edge":
        return np.asarray(part[EDGE], dtype=np.int64).reshape(-1, 2)
    return np.stack([np.asarray(part[SOURCE_NODE], dtype=np.int64),
                     np.asarray(part[TARGET_NODE], dtype=np.int64)], 1)


def num_positives(part: dict, split_style: str) -> int:
    """How many positive edges one split part holds."""
    return len(part[_POSITIVE_KEYS[split_style][0]])


def negatives(part: dict, split_style: str):
    """The negatives of one split part (``edge_neg`` / ``target_node_neg``), or None (train)."""
    return part.get(_NEGATIVE_KEY[split_style])


def pair_keys(src: np.ndarray, dst: np.ndarray, num_nodes: int, directed: bool = False) -> np.ndarray:
    """One int64 key per node pair, element-wise over same-shaped int64 arrays: ``src * N + dst``,
    or ``min * N + max`` for undirected data (where ``(u, v)`` and ``(v, u)`` are one edge)."""
    if directed:
        return src * num_nodes + dst
    return np.minimum(src, dst) * num_nodes + np.maximum(src, dst)


def heldout_in_train(split: dict, split_style: str, train_pairs: np.ndarray, num_nodes: int,
                     directed: bool) -> dict[str, int]:
    """How many valid/test positives are also training edges (in either direction if undirected)."""
    train_keys = np.unique(pair_keys(train_pairs[:, 0], train_pairs[:, 1], num_nodes, directed))
    counts = {}
    for part in HELDOUT:
        pos = positive_pairs(split[part], split_style)
        counts[part] = int(np.isin(pair_keys(pos[:, 0], pos[:, 1], num_nodes, directed), train_keys).sum())
    return counts


def as_node_pairs(value, what: str) -> np.ndarray:
    """``value`` as an ``(E, 2)`` int64 array of node ids (raises DatasetError naming ``what``)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu" and arr.size:
        raise DatasetError(f"{what} must hold integer node ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DatasetError(f"{what} must have shape (E, 2), got {arr.shape}")
    return arr


def check_node_ids(arr: np.ndarray, num_nodes: int, what: str) -> None:
    """Every id in ``arr`` lies in ``[0, num_nodes)`` (raises DatasetError naming ``what``)."""
    if arr.size and (arr.min() < 0 or arr.max() >= num_nodes):
        raise DatasetError(f"{what} holds node ids in [{arr.min()}, {arr.max()}], outside [0, {num_nodes})")


def check_link_metric(metric: str, where: str | None = None) -> None:
    """``metric`` is one OGB's link Evaluator computes (raises DatasetError, prefixed by ``where``)."""
    if metric not in LINK_METRIC_EVALUATORS:
        lead = f"{where}: " if where else ""
        raise DatasetError(f"{lead}unknown link metric {metric!r}; OGB's Evaluator knows "
                           f"{', '.join(LINK_METRIC_EVALUATORS)}")


def check_link_split(split: dict, num_nodes: int, split_style: str, metric: str, where: str = "split") -> None:
    """Check a link split as OGB's ``get_edge_split()`` returns it (numpy arrays or tensors).

    Raises:
        DatasetError: one line naming the part (``valid['edge_neg']``...) that is wrong.
    """
    if split_style not in LINK_SPLIT_STYLES:
        raise DatasetError(f"split_style must be one of {LINK_SPLIT_STYLES}, got {split_style!r}")
    check_link_metric(metric)
    if LINK_METRIC_STYLE[metric] != split_style:
        raise DatasetError(f"metric {metric} needs a {LINK_METRIC_STYLE[metric]}-style split, got {split_style}")
    check_part = _check_edge_part if split_style == "edge" else _check_source_target_part
    for part in SPLITS:
        if part not in split:
            raise DatasetError(f"{where} is missing its {part!r} part")
        at = f"{where}[{part!r}]"
        need = link_split_keys(split_style, part)
        for key in need:
            if key not in split[part]:
                raise DatasetError(f"{at} has no {key!r} ({split_style}-style split needs {need})")
        if check_part(split[part], num_nodes, at) == 0:
            raise DatasetError(f"{at} has no positive edges; every split needs edges")
        neg = negatives(split[part], split_style)
        if part in HELDOUT and len(neg) == 0:
            raise DatasetError(f"{at}[{_NEGATIVE_KEY[split_style]!r}] is empty; evaluation needs negative edges")


def _check_edge_part(d: dict, num_nodes: int, at: str) -> int:
    """Check the arrays of one ``edge``-style part; returns its number of positives."""
    pos = as_node_pairs(d[EDGE], f"{at}[{EDGE!r}]")
    check_node_ids(pos, num_nodes, f"{at}[{EDGE!r}]")
    if EDGE_NEG in d:
        neg = as_node_pairs(d[EDGE_NEG], f"{at}[{EDGE_NEG!r}]")
        check_node_ids(neg, num_nodes, f"{at}[{EDGE_NEG!r}]")
    return len(pos)


def _check_source_target_part(d: dict, num_nodes: int, at: str) -> int:
    """Check the arrays of one ``source_target``-style part; returns its number of positives."""
    src = np.asarray(d[SOURCE_NODE]).astype(np.int64, copy=False)
    dst = np.asarray(d[TARGET_NODE]).astype(np.int64, copy=False)
    if src.ndim != 1 or src.shape != dst.shape:
        raise DatasetError(f"{at} {SOURCE_NODE} {src.shape} and {TARGET_NODE} {dst.shape} "
                           f"must be 1-d and of equal length")
    check_node_ids(src, num_nodes, f"{at}[{SOURCE_NODE!r}]")
    check_node_ids(dst, num_nodes, f"{at}[{TARGET_NODE!r}]")
    if TARGET_NODE_NEG in d:
        neg = np.asarray(d[TARGET_NODE_NEG]).astype(np.int64, copy=False)
        if neg.ndim != 2 or neg.shape[0] != len(src) or neg.shape[1] == 0:
            raise DatasetError(f"{at}[{TARGET_NODE_NEG!r}] must have shape ({len(src)}, K>0), got {neg.shape}")
        check_node_ids(neg, num_nodes, f"{at}[{TARGET_NODE_NEG!r}]")
    return len(src)
