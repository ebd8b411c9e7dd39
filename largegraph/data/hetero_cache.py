"""The processed cache of typed datasets: the prepared graph's arrays, one ``.npy`` per node type and
relation, mapped by every process on the machine (see :mod:`largegraph.data.cache`, whose folders,
keys, locks, validation and atomic build this reuses; only the arrays differ).

A cache folder of a typed dataset holds ``feat.<type>.npy`` (featured types, in
``data.feature_dtype``), ``year.<type>.npy``, ``label.npy`` (node task: labels of the target type),
and per relation ``<src>___<rel>___<dst>``: ``indptr.<relation>.npy`` and ``indices.<relation>.npy``
(the CSC of its in-edges) plus ``eids.<relation>.npy`` (link task: edges keep their ids), then
``split.pt`` and the manifest.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import dgl
import torch

from largegraph.config import DataConfig
from largegraph.core.fsutil import atomic_write_text, write_synced
from largegraph.core.madvise import advise_random
from largegraph.data.cache import (FORMAT, SPLIT_FILE, _feature_array, _prep, _save, as_feature_dtype, map_array,
                                   read_array)
from largegraph.data.dataset_format import GRAPH_CACHE_MANIFEST, relation_dir_name
from largegraph.data.graph import Storage
from largegraph.data.hetero import HeteroGraphData, HeteroLinkData

NODE_TASK, LINK_TASK = "hetero-node", "hetero-link"
_NODE_KEYS = ("feat", "year")


def write_hetero_cache(folder: Path, data: HeteroGraphData | HeteroLinkData, key: str, source: str,
                       cfg: DataConfig, *, consume: bool = False) -> dict:
    """Write prepared typed ``data`` as the arrays of cache folder ``folder`` (manifest last).

    Same contract as :func:`largegraph.data.cache.write_cache`; ``consume`` drops the node data once
    written, before the relations' CSC arrays are built.
    """
    folder.mkdir(parents=True)
    link = isinstance(data, HeteroLinkData)
    g = data.graph
    arrays: dict = {}
    for t in g.ntypes:
        stored = g.nodes[t].data
        if "feat" in stored:
            _save(folder, f"feat.{t}", _feature_array(stored["feat"], cfg.feature_dtype), arrays)
        if "year" in stored:
            _save(folder, f"year.{t}", stored["year"], arrays)
    if not link:
        _save(folder, "label", g.nodes[data.target].data["label"], arrays)
    if consume:
        for t in g.ntypes:
            g.nodes[t].data.clear()
    for relation in g.canonical_etypes:
        name = relation_dir_name(relation)
        indptr, indices, eids = g.adj_tensors("csc", etype=relation)
        _save(folder, f"indptr.{name}", indptr, arrays)
        _save(folder, f"indices.{name}", indices, arrays)
        if link:
            _save(folder, f"eids.{name}", eids, arrays)
    write_synced(folder / SPLIT_FILE, lambda handle: torch.save(data.split, handle))
    manifest = {
        "format": FORMAT, "key": key, "source": source, "task": LINK_TASK if link else NODE_TASK, "name": data.name,
        "num_nodes": {t: int(g.num_nodes(t)) for t in g.ntypes},
        "relations": [list(r) for r in g.canonical_etypes],
        "num_edges": {relation_dir_name(r): int(g.num_edges(r)) for r in g.canonical_etypes},
        "feature_dtype": cfg.feature_dtype, "prep": _prep(cfg), "arrays": arrays,
        "info": json.loads(json.dumps(data.info, default=str)), "created": time.time(),
    }
    if link:
        manifest["link"] = {"target": list(data.target), "metric": data.metric, "evaluator_name": data.evaluator_name}
    else:
        manifest["node"] = {"target": data.target, "num_classes": data.num_classes, "metric": data.metric,
                            "evaluator_name": data.evaluator_name}
    atomic_write_text(folder / GRAPH_CACHE_MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def open_hetero_graph(path: Path, manifest: dict) -> dgl.DGLHeteroGraph:
    """The typed message-passing graph over the mapped CSC arrays of each relation (no copy)."""
    link = manifest["task"] == LINK_TASK
    data_dict = {}
    for relation in map(tuple, manifest["relations"]):
        name = relation_dir_name(relation)
        eids = map_array(path, f"eids.{name}") if link else torch.empty(0, dtype=torch.int64)
        data_dict[relation] = ("csc", (map_array(path, f"indptr.{name}"), map_array(path, f"indices.{name}"), eids))
    graph = dgl.heterograph(data_dict, num_nodes_dict=manifest["num_nodes"])
    # As for homogeneous node graphs: one format, so no process builds a private COO or CSR.
    return graph if link else graph.formats("csc")


def open_hetero_cached(path: Path, manifest: dict, features: str) -> HeteroGraphData | HeteroLinkData:
    """A typed dataset from its cache folder; ``features``: the resolved mode, ``memory`` or ``mmap``."""
    graph = open_hetero_graph(path, manifest)
    for name in manifest["arrays"]:
        kind, _, t = name.partition(".")
        if kind not in _NODE_KEYS:
            continue
        if kind == "feat" and features == "memory":
            raw = read_array(path, name)
        else:
            raw = map_array(path, name)
            if kind == "feat":
                advise_random(raw)
        graph.nodes[t].data[kind] = as_feature_dtype(raw, manifest["feature_dtype"]) if kind == "feat" else raw
    split = torch.load(path / SPLIT_FILE, weights_only=True)
    info = {**manifest["info"], "cache": str(path), "features": features}
    opened = {"name": manifest["name"], "graph": graph, "split": split, "info": info,
              "storage": Storage(features, str(path))}
    if manifest["task"] == LINK_TASK:
        link = dict(manifest["link"], target=tuple(manifest["link"]["target"]))
        return HeteroLinkData(**opened, **link)
    node = manifest["node"]
    graph.nodes[node["target"]].data["label"] = map_array(path, "label")
    return HeteroGraphData(**opened, **node)


def cached_bytes(manifest: dict) -> dict[str, int]:
    """Bytes of the cache's arrays by part: ``features`` (every type), ``topology``, ``labels``."""
    parts = {"features": 0, "topology": 0, "labels": 0}
    for name, spec in manifest["arrays"].items():
        kind = name.partition(".")[0]
        part = "features" if kind == "feat" else "labels" if kind in ("label", "year") else "topology"
        parts[part] += int(spec["file_bytes"])
    return parts
