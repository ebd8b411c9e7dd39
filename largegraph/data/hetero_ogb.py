"""Typed datasets through OGB's own heterogeneous loader: finding one (largegraph's, or ogbn-mag from a
user-given root, never downloaded), checking its files before OGB sees them, and reading it.

A labelled typed dataset is read by ``DglNodePropPredDataset`` (``is hetero``), as ogbn-mag is; one
without labels (an import for link prediction) by OGB's ``read_heterograph_dgl``, which the former
calls. Either way under the dataset's lock, with stdin closed, as :mod:`largegraph.data.ogb` does.
"""
from __future__ import annotations

import gzip
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import dgl
import numpy as np
import pandas as pd
import torch

from largegraph.core.errors import DatasetError
from largegraph.data.dataset_format import (
    EDGE_CSV, HAS_LABEL_CSV, HAS_SPLIT_CSV, HETERO_TASK, META_FILE, NODE_YEAR, NUM_NODE_DICT_CSV, RAW_DIR,
    RELATIONS_DIR, SPLIT_DICT, TRIPLETS_CSV, dataset_dir, official_dataset_dir, read_meta, relation_dir_name,
    release_marker, split_dir,
)
from largegraph.data.ogb import _labels_to_int, _quiet_and_closed_stdin, dataset_lock, official_meta, read_with_ogb

__all__ = ["TypedSource", "TypedGraph", "find_typed", "read_typed", "relations_of"]

Relation = tuple[str, str, str]


@dataclass(frozen=True)
class TypedSource:
    """A typed dataset found on disk: its directory, OGB meta_dict, whether it is an official OGB one."""

    name: str
    directory: Path
    meta: dict
    official: bool

    @property
    def labelled(self) -> bool:
        return self.official or (self.directory / RAW_DIR / HAS_LABEL_CSV).exists()


@dataclass
class TypedGraph:
    """A typed graph as OGB stores it (no reverse relations yet), with its labels and split if any.

    Attributes:
        graph: node data ``feat`` (float32, featured types), ``year`` (int64 ``(N,)``), ``label``
            (int64, -1 unlabelled, on ``target``).
        target: the labelled node type, or None.
        num_classes: classes of ``target`` (0 without labels).
        split: ``train``/``valid``/``test`` -> int64 ids of ``target`` ({} without labels).
    """

    graph: dgl.DGLHeteroGraph
    target: str | None
    num_classes: int
    split: dict[str, torch.Tensor]


def find_typed(name: str, root: str | os.PathLike) -> TypedSource | None:
    """The typed dataset ``name`` under ``root``, or None when ``name`` is not a typed dataset.

    Raises:
        DatasetError: a typed dataset whose files are missing or inconsistent, saying how to fix it.
    """
    root = Path(root).expanduser()
    own = dataset_dir(root, name)
    if (own / META_FILE).exists():
        meta = read_meta(own)
        if meta.get("task") != HETERO_TASK:
            return None
        source = TypedSource(name, own, dict(meta["ogb_meta"], dir_path=str(own)), False)
        _require_files(source, "rewrite it with `largegraph data synth hetero` or `largegraph data import`")
        return source
    master = official_meta("node")
    if name not in master or master[name]["is hetero"] != "True":
        return None
    directory = official_dataset_dir(root, name)
    meta = dict(master[name])
    how = (f"this machine cannot download; fetch {meta['url']} elsewhere and unzip it into {root} so that "
           f"{directory / RAW_DIR} exists (or set data.root to where it is)")
    source = TypedSource(name, directory, meta, True)
    _require_files(source, how)
    return source


def _require_files(source: TypedSource, how_to_get: str) -> None:
    """Every file OGB would otherwise download or prompt about, and the types the files name."""
    raw = source.directory / RAW_DIR
    processed = (source.directory / "processed" / "dgl_data_processed").exists()
    for needed in (NUM_NODE_DICT_CSV, TRIPLETS_CSV):
        if not (raw / needed).exists() and not processed:
            raise DatasetError(f"dataset {source.name} not found: expected {raw / needed}; {how_to_get}")
    marker = release_marker(source.directory, source.meta["version"])
    if not marker.exists():
        raise DatasetError(f"{marker} is missing, so OGB would ask to re-download {source.name}; restore it from "
                           f"OGB's zip (or `touch` it if the files are OGB release v{source.meta['version']})")
    if processed and not (raw / NUM_NODE_DICT_CSV).exists():
        return
    types = set(_csv_header(raw / NUM_NODE_DICT_CSV))
    for relation in relations_of(source):
        unknown = [t for t in (relation[0], relation[2]) if t not in types]
        if unknown:
            raise DatasetError(f"{source.name}: relation {':'.join(relation)} names node type {unknown[0]!r}, which "
                               f"{raw / NUM_NODE_DICT_CSV} does not list ({', '.join(sorted(types))})")
        if not (raw / RELATIONS_DIR / relation_dir_name(relation) / EDGE_CSV).exists():
            raise DatasetError(f"{source.name}: relation {':'.join(relation)} has no edge file "
                               f"{raw / RELATIONS_DIR / relation_dir_name(relation) / EDGE_CSV}; re-extract the dataset")
    if (raw / HAS_LABEL_CSV).exists():
        unknown = [t for t in _csv_header(raw / HAS_LABEL_CSV) if t not in types]
        if unknown:
            raise DatasetError(f"{source.name}: labels are given for node type {unknown[0]!r}, which "
                               f"{raw / NUM_NODE_DICT_CSV} does not list ({', '.join(sorted(types))})")
        folder = split_dir(source.directory, source.meta["split"])
        if not (folder / SPLIT_DICT).exists() and not (folder / HAS_SPLIT_CSV).exists():
            raise DatasetError(f"split file {folder / HAS_SPLIT_CSV} is missing; re-extract the dataset")


def relations_of(source: TypedSource) -> list[Relation]:
    """The dataset's relations from its small triplet file (its edges are not read)."""
    triplets = pd.read_csv(source.directory / RAW_DIR / TRIPLETS_CSV, header=None, dtype=str).values.tolist()
    return sorted(map(tuple, triplets))


def _csv_header(path: Path) -> list[str]:
    with gzip.open(path, "rt") as handle:
        return handle.readline().strip().split(",")


def read_typed(source: TypedSource) -> TypedGraph:
    """Read a typed dataset with OGB's loader (see the module docstring).

    Raises:
        DatasetError: OGB cannot read it, or a relation's ids exceed its type's count.
    """
    if source.labelled:
        try:
            dataset, split = read_with_ogb("node", source.name, source.directory, source.meta, source.official)
        except (DatasetError, dgl.DGLError) as exc:
            _diagnose(source)
            raise DatasetError(" ".join(str(exc).split())) from None
        graph, labels = dataset.graph[0], dataset.labels
    else:
        graph, labels, split = _read_unlabelled(source), {}, {}
    return _as_typed(source, graph, labels, split)


def _read_unlabelled(source: TypedSource) -> dgl.DGLHeteroGraph:
    from ogb.io.read_graph_dgl import read_heterograph_dgl

    extra = [] if source.meta["additional node files"] == "None" else source.meta["additional node files"].split(",")
    with dataset_lock(source.directory), _quiet_and_closed_stdin(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        try:
            return read_heterograph_dgl(str(source.directory / RAW_DIR), additional_node_files=extra)[0]
        except (dgl.DGLError, FileNotFoundError, RuntimeError, ValueError, KeyError, OSError) as exc:
            _diagnose(source)
            raise DatasetError(f"OGB could not read {source.name} from {source.directory}: {exc}") from None


def _diagnose(source: TypedSource) -> None:
    """After OGB failed: name the relation whose ids exceed its type's count, if that is the cause."""
    raw = source.directory / RAW_DIR
    if not (raw / NUM_NODE_DICT_CSV).exists():
        return
    counts = pd.read_csv(raw / NUM_NODE_DICT_CSV).iloc[0].astype(np.int64).to_dict()
    for relation in relations_of(source):
        pairs = pd.read_csv(raw / RELATIONS_DIR / relation_dir_name(relation) / EDGE_CSV, header=None).values
        from largegraph.data.hetero_writer import check_relation_ids

        check_relation_ids(relation, pairs, counts)


def _as_typed(source: TypedSource, graph: dgl.DGLHeteroGraph, labels: dict, split: dict) -> TypedGraph:
    """OGB's graph with our dtypes: float32 features, ``(N,)`` int64 years, int64 labels on the
    target; edge data (ogbn-mag's ``reltype``) and other node data dropped."""
    for t in graph.ntypes:
        data = graph.nodes[t].data
        kept = {}
        if "feat" in data:
            kept["feat"] = data["feat"].to(torch.float32)
        if NODE_YEAR.removeprefix("node_") in data:
            kept["year"] = data["year"].reshape(-1).to(torch.int64)
        for key in list(data.keys()):
            data.pop(key)
        data.update(kept)
    for etype in graph.canonical_etypes:
        for key in list(graph.edges[etype].data.keys()):
            graph.edges[etype].data.pop(key)
    target = next(iter(labels), None)
    if target is None:
        return TypedGraph(graph, None, 0, {})
    graph.nodes[target].data["label"] = _labels_to_int(labels[target])
    parts = {k: torch.as_tensor(np.asarray(v[target]), dtype=torch.int64) for k, v in split.items()}
    return TypedGraph(graph, target, int(source.meta["num classes"]), parts)
