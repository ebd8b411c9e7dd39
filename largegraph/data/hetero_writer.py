"""Writes typed (heterogeneous) graphs in OGB's heterogeneous on-disk layout, ogbn-mag's, so that they
load through OGB's own loader (``DglNodePropPredDataset`` with ``is hetero``, ``read_heterograph_dgl``).

The layout, under the dataset directory (names in :mod:`largegraph.data.dataset_format`)::

    raw/num-node-dict.csv.gz                       header of node types, one row of counts
    raw/triplet-type-list.csv.gz                   one (src, rel, dst) a row
    raw/relations/<src>___<rel>___<dst>/edge.csv.gz, num-edge-list.csv.gz
    raw/node-feat/<type>/node-feat.csv.gz          featured types only (a featureless type has none)
    raw/node-feat/<type>/node_year.csv.gz          a year per node, where the dataset has one
    raw/nodetype-has-label.csv.gz, raw/node-label/<type>/node-label.csv.gz
    split/largegraph/nodetype-has-split.csv.gz, split/largegraph/<type>/{train,valid,test}.csv.gz
    mapping/<type>/nodeidx2id.csv.gz               original ids of imported types

Writing goes through :func:`largegraph.data.ogb_writer._write_dataset`: staged, fsynced, swapped in whole.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from largegraph.core.errors import DatasetError
from largegraph.data.dataset_format import (
    EDGE_CSV, HAS_LABEL_CSV, HAS_SPLIT_CSV, HETERO_TASK, NODE_FEAT_CSV, NODE_FEAT_DIR, NODE_LABEL_CSV,
    NODE_LABEL_DIR, NODE_YEAR, NUM_EDGES_CSV, NUM_NODE_DICT_CSV, RAW_DIR, RELATIONS_DIR, SPLIT_NAME, SPLITS,
    TRIPLETS_CSV, relation_dir_name, split_dir,
)
from largegraph.data.ogb_writer import DatasetFile, _csv_gz, _mapping_files, _ogb_meta, _write_dataset

__all__ = ["TypedArrays", "write_hetero_dataset", "check_type_name"]

Relation = tuple[str, str, str]
_RAW = Path(RAW_DIR)
_SPLIT = split_dir(Path(), SPLIT_NAME)
# Type and relation names become folder names and OGB joins them with "___": keep them plain.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def check_type_name(name: str, what: str) -> None:
    """A node type or relation name OGB's layout can hold (raises DatasetError naming ``what``)."""
    if not _NAME.fullmatch(name) or "___" in name:
        raise DatasetError(f"{what} {name!r} must start with a letter and hold only letters, digits and single "
                           f"underscores (it names folders of OGB's layout)")


class TypedArrays:
    """The arrays of a typed graph, checked for consistency on construction.

    Args:
        num_nodes: node type -> count.
        edges: relation ``(src, rel, dst)`` -> ``(E, 2)`` int array of source and destination ids.
        feat: node type -> ``(N_t, D_t)`` float32 features (types absent: featureless).
        labels: the labelled type -> ``(N_t,)`` int class ids, ``-1`` unlabelled; at most one type.
        num_classes: classes of the labelled type (0 without labels).
        split: ``train``/``valid``/``test`` -> ids of the labelled type (None without labels).
        year: node type -> ``(N_t,)`` int years (ogbn-mag's papers).

    Raises:
        DatasetError: one line naming the first inconsistency.
    """

    def __init__(self, num_nodes: dict[str, int], edges: dict[Relation, np.ndarray],
                 feat: dict[str, np.ndarray] | None = None, labels: dict[str, np.ndarray] | None = None,
                 num_classes: int = 0, split: dict[str, np.ndarray] | None = None,
                 year: dict[str, np.ndarray] | None = None):
        self.num_nodes = {t: int(n) for t, n in num_nodes.items()}
        self.edges = {tuple(r): np.ascontiguousarray(e, dtype=np.int64).reshape(-1, 2) for r, e in edges.items()}
        self.feat = {t: np.ascontiguousarray(f, dtype=np.float32) for t, f in (feat or {}).items()}
        self.labels = {t: np.asarray(y, dtype=np.int64) for t, y in (labels or {}).items()}
        self.num_classes = int(num_classes)
        self.split = {k: np.asarray(v, dtype=np.int64) for k, v in (split or {}).items()}
        self.year = {t: np.asarray(y, dtype=np.int64) for t, y in (year or {}).items()}
        self._check()

    @property
    def label_type(self) -> str | None:
        return next(iter(self.labels), None)

    def _check(self) -> None:
        for t in self.num_nodes:
            check_type_name(t, "node type")
        for relation, pairs in self.edges.items():
            check_type_name(relation[1], "relation")
            for end, t in (("source", relation[0]), ("destination", relation[2])):
                if t not in self.num_nodes:
                    raise DatasetError(f"relation {':'.join(relation)} names {end} type {t!r}, which is not a node type "
                                       f"({', '.join(self.num_nodes)})")
            check_relation_ids(relation, pairs, self.num_nodes)
        for kind, arrays in (("features", self.feat), ("labels", self.labels), ("years", self.year)):
            for t, arr in arrays.items():
                if t not in self.num_nodes:
                    raise DatasetError(f"{kind} are given for node type {t!r}, which does not exist "
                                       f"({', '.join(self.num_nodes)})")
                if arr.shape[0] != self.num_nodes[t] or (kind != "features" and arr.ndim != 1):
                    raise DatasetError(f"{kind} of node type {t!r} have shape {arr.shape}; {self.num_nodes[t]} rows expected")
        if len(self.labels) > 1:
            raise DatasetError(f"labels are given for {len(self.labels)} node types; one labelled type is supported")
        if self.labels:
            self._check_labels()

    def _check_labels(self) -> None:
        t = self.label_type
        y = self.labels[t]
        if y.max(initial=-1) >= self.num_classes:
            raise DatasetError(f"label {y.max()} of node type {t!r} is out of range for {self.num_classes} classes")
        for part in SPLITS:
            ids = self.split.get(part)
            if ids is None or len(ids) == 0:
                raise DatasetError(f"the {part} split of node type {t!r} is empty; every split needs nodes")
            if ids.min() < 0 or ids.max() >= self.num_nodes[t]:
                raise DatasetError(f"the {part} split holds ids outside [0, {self.num_nodes[t]}) of node type {t!r}")


def check_relation_ids(relation: Relation, pairs: np.ndarray, num_nodes: dict[str, int]) -> None:
    """Every id of ``pairs`` lies within its type's count (raises DatasetError naming the relation)."""
    for col, t in ((0, relation[0]), (1, relation[2])):
        if len(pairs) and (pairs[:, col].min() < 0 or pairs[:, col].max() >= num_nodes[t]):
            raise DatasetError(f"relation {':'.join(relation)} holds {t} ids in [{pairs[:, col].min()}, "
                               f"{pairs[:, col].max()}], but node type {t!r} has {num_nodes[t]} nodes")


def write_hetero_dataset(root: str | os.PathLike, name: str, arrays: TypedArrays, *,
                         mappings: dict[str, pd.DataFrame] | None = None, info: dict | None = None) -> Path:
    """Write a typed graph in OGB's heterogeneous layout (ogbn-mag's), atomically.

    Args:
        root: directory that holds datasets; the dataset goes to ``root/<name with - as _>``.
        name: dataset name.
        arrays: the graph's arrays (:class:`TypedArrays`).
        mappings: tables written to ``mapping/<key>.csv.gz`` (``<type>/nodeidx2id`` per imported type).
        info: provenance stored in ``largegraph.json``.

    Returns:
        The dataset directory.
    """
    label_type = arrays.label_type
    task_fields = {"num tasks": "1", "num classes": str(arrays.num_classes),
                   "task type": "multiclass classification", "eval metric": "acc"}
    ogb_meta = _ogb_meta(name, binary=False, has_features=bool(arrays.feat), add_inverse_edge=False,
                         task_fields=task_fields)
    ogb_meta.update({"is hetero": "True", "additional node files": NODE_YEAR if arrays.year else "None"})
    fields = {
        "ogb_meta": ogb_meta, "label_type": label_type, "num_classes": arrays.num_classes,
        "num_nodes": arrays.num_nodes, "feat_dims": {t: int(f.shape[1]) for t, f in arrays.feat.items()},
        "relations": [list(r) for r in arrays.edges],
        "num_edges": {relation_dir_name(r): int(len(e)) for r, e in arrays.edges.items()},
    }
    files = _hetero_files(arrays, mappings)
    return _write_dataset(root, name, HETERO_TASK, files, info, **fields)


def _hetero_files(arrays: TypedArrays, mappings: dict[str, pd.DataFrame] | None) -> Iterator[DatasetFile]:
    types = list(arrays.num_nodes)
    yield _RAW / NUM_NODE_DICT_CSV, _csv_gz(pd.DataFrame({t: [n] for t, n in arrays.num_nodes.items()}), header=True)
    yield _RAW / TRIPLETS_CSV, _csv_gz(pd.DataFrame([list(r) for r in arrays.edges]))
    for relation, pairs in arrays.edges.items():
        folder = _RAW / RELATIONS_DIR / relation_dir_name(relation)
        yield folder / EDGE_CSV, _csv_gz(pd.DataFrame(pairs))
        yield folder / NUM_EDGES_CSV, _csv_gz(pd.DataFrame([len(pairs)]))
    for t, feat in arrays.feat.items():
        # %.9g round-trips float32 exactly through OGB's float64 parse and float32 cast.
        yield _RAW / NODE_FEAT_DIR / t / NODE_FEAT_CSV, _csv_gz(pd.DataFrame(feat), float_format="%.9g")
    for t, year in arrays.year.items():
        yield _RAW / NODE_FEAT_DIR / t / f"{NODE_YEAR}.csv.gz", _csv_gz(pd.DataFrame(year))
    if arrays.labels:
        yield from _label_files(arrays, types)
    yield from _mapping_files(mappings)


def _label_files(arrays: TypedArrays, types: list[str]) -> Iterator[DatasetFile]:
    label_type = arrays.label_type
    has = pd.DataFrame({t: [t == label_type] for t in types})
    yield _RAW / HAS_LABEL_CSV, _csv_gz(has, header=True)
    labels = arrays.labels[label_type]
    # Unlabelled nodes (-1) become empty fields: OGB reads them as NaN (float labels), we as -1 again.
    col = pd.array(np.where(labels >= 0, labels, 0), dtype="Int64")
    col[labels < 0] = pd.NA
    yield _RAW / NODE_LABEL_DIR / label_type / NODE_LABEL_CSV, _csv_gz(pd.DataFrame({"y": col}))
    yield _SPLIT / HAS_SPLIT_CSV, _csv_gz(has, header=True)
    for part in SPLITS:
        yield _SPLIT / label_type / f"{part}.csv.gz", _csv_gz(pd.DataFrame(arrays.split[part]))
