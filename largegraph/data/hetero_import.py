"""Bring your own typed graph: ``largegraph data import --nodes ... --edges ...`` from plain CSVs.

* ``--nodes users.csv`` (type ``users``, the file's stem) or ``--nodes users.csv:user``: one CSV per
  node type with a header; the id column (``--id-col``, else the first column) holds that type's ids
  (integers or strings); every other column whose cells are all numbers is a feature, other columns
  are ignored. A file with no numeric column gives a featureless type (the model learns a table).
* ``--edges follows.csv:user:follows:user``: a CSV whose first two columns are source and
  destination ids of the named types; direction kept, repeated pairs collapsed into one edge.
* ``--labels users.csv:segment`` (the type of that ``--nodes`` file) or ``--labels FILE:TYPE:COLUMN``:
  the labelled type's classes (blank: unlabelled); the labelled nodes are split by seeded ratios.

Ids are numbered per type in sorted order (numeric when all are integers) and kept in
``mapping/<type>/nodeidx2id.csv.gz``, so predictions and embeddings can be written under each type's
own ids. Every problem is one :class:`DatasetError` line naming the file, type or id at fault.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from largegraph.core.errors import DatasetError
from largegraph.data.hetero_writer import TypedArrays, check_type_name, write_hetero_dataset
from largegraph.data.input_files import PathLike, read_csv_table, read_edges, require_column, require_file
from largegraph.data.node_ids import NodeIds, all_integers, first_duplicate
from largegraph.data.node_import import _encode_labels, _split_by_ratios, check_dataset_name

__all__ = ["import_hetero_dataset", "id_mapping_key"]

Relation = tuple[str, str, str]


def id_mapping_key(ntype: str) -> str:
    """The mapping table (``mapping/<key>.csv.gz``) that keeps the original ids of node type ``ntype``."""
    return f"{ntype}/nodeidx2id"


@dataclass
class _TypeTable:
    """One node type read from its file: ids, features (or None) and the file's frame (labels)."""

    path: Path
    nodes: NodeIds
    raw_ids: np.ndarray
    feat: np.ndarray | None
    frame: pd.DataFrame
    id_col: str


def _split_spec(spec: str, parts: int, flag: str, example: str) -> list[str]:
    """``FILE:A:B`` split from the right into ``parts`` fields (a path may hold ':')."""
    fields = spec.rsplit(":", parts - 1)
    if len(fields) != parts or not all(fields):
        raise DatasetError(f"{flag} {spec!r} must be written {example}")
    return fields


def _node_specs(specs: list[str]) -> dict[str, Path]:
    """Node type -> its file, from ``FILE`` or ``FILE:TYPE`` entries."""
    types: dict[str, Path] = {}
    for spec in specs:
        path, _, ntype = spec.rpartition(":") if not Path(spec).exists() and ":" in spec else (spec, "", "")
        path = require_file(path, "nodes")
        ntype = ntype or path.name.split(".")[0]
        check_type_name(ntype, f"node type of --nodes {spec}")
        if ntype in types:
            raise DatasetError(f"node type {ntype!r} is given by two --nodes files ({types[ntype]} and {path}); "
                               f"one file per type, or name the type with FILE:TYPE")
        types[ntype] = path
    return types


def _read_type(ntype: str, path: Path, id_col: str, skip: set[str]) -> _TypeTable:
    frame = read_csv_table(path, f"nodes ({ntype})")
    if frame.shape[1] == 0:
        raise DatasetError(f"nodes file {path} has no columns; it needs a header with an id column")
    col = id_col if id_col in frame.columns else frame.columns[0]
    ids = frame[col].fillna("").str.strip().to_numpy(dtype=object)
    if len(ids) == 0 or (ids == "").any():
        line = int(np.flatnonzero(ids == "")[0]) + 2 if len(ids) else 1
        raise DatasetError(f"nodes file {path}, line {line}: every row needs an id in column {col!r} (and the file "
                           f"at least one row)")
    dup = first_duplicate(ids)
    if dup is not None:
        raise DatasetError(f"nodes file {path} lists {ntype} id {dup!r} more than once; keep one row per node")
    nodes = NodeIds([ids], all_integers(ids))
    numeric = {}
    for name in frame.columns:
        if name == col or name in skip:
            continue
        values = pd.to_numeric(frame[name].str.strip(), errors="coerce")
        if values.notna().all():
            numeric[name] = values.to_numpy(dtype=np.float32)
    feat = None
    if numeric:
        feat = np.empty((len(nodes), len(numeric)), dtype=np.float32)
        feat[nodes.lookup(ids)] = np.stack(list(numeric.values()), axis=1)
        if not np.isfinite(feat).all():
            raise DatasetError(f"nodes file {path}: a feature value is inf or too large for float32; clean it")
    return _TypeTable(path, nodes, ids, feat, frame, col)


def _relation(spec: str, tables: dict[str, _TypeTable]) -> tuple[Path, Relation]:
    path, src, rel, dst = _split_spec(spec, 4, "--edges", "FILE:SRC_TYPE:RELATION:DST_TYPE (e.g. "
                                                          "bought.csv:user:bought:item)")
    check_type_name(rel, f"relation of --edges {spec}")
    for end, ntype in (("source", src), ("destination", dst)):
        if ntype not in tables:
            raise DatasetError(f"--edges {spec} names {end} type {ntype!r}, which no --nodes file gives "
                               f"({', '.join(tables)}); add --nodes FILE:{ntype} or fix the type")
    return require_file(path, "edges"), (src, rel, dst)


def _edge_pairs(path: Path, relation: Relation, tables: dict[str, _TypeTable]) -> tuple[np.ndarray, int]:
    """The relation's distinct ``(src, dst)`` index pairs (sorted) and how many rows repeated one."""
    src_ids, dst_ids, _ = read_edges(path, None, None)
    ends = []
    for raw, ntype, end in ((src_ids, relation[0], "source"), (dst_ids, relation[2], "destination")):
        idx = tables[ntype].nodes.lookup(raw)
        if (idx < 0).any():
            row = int(np.flatnonzero(idx < 0)[0])
            raise DatasetError(f"edges file {path}, line {row + 2}: {end} id {raw[row]!r} is not a {ntype} id of "
                               f"{tables[ntype].path}; every edge must join nodes that their types' files list")
        ends.append(idx)
    n_dst = len(tables[relation[2]].nodes)
    keys = np.unique(ends[0] * n_dst + ends[1])
    return np.stack([keys // n_dst, keys % n_dst], axis=1), len(src_ids) - len(keys)


def _label_spec(spec: str, types: dict[str, Path]) -> tuple[str, str]:
    """(type, column) of ``--labels FILE:COLUMN`` (FILE one of --nodes) or ``FILE:TYPE:COLUMN``."""
    fields = spec.rsplit(":", 2)
    if len(fields) == 3 and not Path(f"{fields[0]}:{fields[1]}").exists():
        path, ntype, column = fields
    else:
        path, column = _split_spec(spec, 2, "--labels", "FILE:COLUMN or FILE:TYPE:COLUMN (e.g. users.csv:segment)")
        resolved = Path(path).expanduser().resolve()
        ntype = next((t for t, p in types.items() if p.resolve() == resolved), Path(path).name.split(".")[0])
    if ntype not in types:
        raise DatasetError(f"--labels {spec} puts labels on node type {ntype!r}, which does not exist "
                           f"({', '.join(types)}); label a type that a --nodes file gives")
    if Path(path).expanduser().resolve() != types[ntype].resolve():
        raise DatasetError(f"--labels {spec}: the labels must be a column of {ntype}'s --nodes file {types[ntype]}")
    return ntype, column


def import_hetero_dataset(*, name: str, root: PathLike, nodes: list[str], edges: list[str],
                          labels: str | None = None, id_col: str = "id",
                          split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0) -> Path:
    """Import a typed graph from CSVs (see the module docstring) into ``root`` in OGB's typed layout.

    Args:
        name: dataset name.
        root: directory that holds datasets.
        nodes: ``FILE`` or ``FILE:TYPE`` per node type.
        edges: ``FILE:SRC_TYPE:RELATION:DST_TYPE`` per relation.
        labels: ``FILE:COLUMN`` or ``FILE:TYPE:COLUMN``, or None (a graph for link prediction).
        id_col: the id column of node files (the first column when absent).
        split_ratios: train/valid/test shares of the labelled nodes, drawn with ``seed``.

    Returns:
        The dataset directory.

    Raises:
        DatasetError: one line naming the file, type, column or id at fault.
    """
    check_dataset_name(name)
    if not nodes or not edges:
        raise DatasetError("a typed import needs --nodes FILE[:TYPE] per node type and --edges "
                           "FILE:SRC_TYPE:RELATION:DST_TYPE per relation")
    types = _node_specs(nodes)
    label_type, label_col = _label_spec(labels, types) if labels else (None, None)
    tables = {t: _read_type(t, p, id_col, {label_col} if t == label_type else set()) for t, p in types.items()}
    pairs: dict[Relation, np.ndarray] = {}
    repeated = {}
    for spec in edges:
        path, relation = _relation(spec, tables)
        if relation in pairs:
            raise DatasetError(f"relation {':'.join(relation)} is given by two --edges files; one file per relation")
        pairs[relation], repeated[":".join(relation)] = _edge_pairs(path, relation, tables)
    label_arrays, num_classes, split, label_table = {}, 0, None, None
    if label_type is not None:
        table = tables[label_type]
        require_column(table.frame, label_col, table.path, "labels", "--labels FILE:COLUMN")
        values = table.frame[label_col].fillna("").str.strip().to_numpy(dtype=object)
        if not (values != "").any():
            raise DatasetError(f"labels column {label_col!r} of {table.path} labels no {label_type} node")
        y, num_classes, label_table = _encode_labels(table.nodes, table.raw_ids, values, table.path)
        label_arrays = {label_type: y}
        split = _split_by_ratios(y, split_ratios, seed)
    arrays = TypedArrays(num_nodes={t: len(tab.nodes) for t, tab in tables.items()}, edges=pairs,
                         feat={t: tab.feat for t, tab in tables.items() if tab.feat is not None},
                         labels=label_arrays, num_classes=num_classes, split=split)
    mappings = {id_mapping_key(t): tab.nodes.frame() for t, tab in tables.items()}
    if label_table is not None:
        mappings["labelidx2label"] = label_table
    info = {"source": "import", "nodes": {t: str(p.absolute()) for t, p in types.items()},
            "id_type": {t: "int" if tab.nodes.integer else "str" for t, tab in tables.items()},
            "labels": labels, "duplicate_edges_dropped": repeated,
            "split": {"ratios": [float(r) for r in split_ratios], "seed": int(seed)} if label_type else None}
    return write_hetero_dataset(root, name, arrays, mappings=mappings, info=info)
