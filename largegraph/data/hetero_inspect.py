"""``largegraph data inspect`` for a typed dataset: per node type (count, feature width, labels, years)
and per relation (edges), read from the raw files' small headers and counts (never the edges
themselves), plus the bytes of its processed cache where one is built."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd

from largegraph.data.cache import cache_parent
from largegraph.data.dataset_format import (
    GRAPH_CACHE_MANIFEST, GRAPH_CACHE_PREFIX, HAS_LABEL_CSV, NODE_FEAT_CSV, NODE_FEAT_DIR, NODE_YEAR, NUM_EDGES_CSV,
    NUM_NODE_DICT_CSV, RAW_DIR, RELATIONS_DIR, relation_dir_name,
)
from largegraph.data.hetero_ogb import TypedSource, relations_of

__all__ = ["typed_summary", "describe_typed"]


def _first_line(path: Path) -> str:
    with gzip.open(path, "rt") as handle:
        return handle.readline().strip()


def typed_summary(source: TypedSource) -> dict:
    """Node types (count, feature width, labelled, year) and relations (edges) of a typed dataset."""
    raw = source.directory / RAW_DIR
    counts = pd.read_csv(raw / NUM_NODE_DICT_CSV).iloc[0].astype(int).to_dict()
    labelled = set()
    if (raw / HAS_LABEL_CSV).exists():
        flags = pd.read_csv(raw / HAS_LABEL_CSV).iloc[0].to_dict()
        labelled = {t for t, has in flags.items() if str(has) == "True"}
    types = {}
    for t, n in counts.items():
        feat = raw / NODE_FEAT_DIR / t / NODE_FEAT_CSV
        types[t] = {"nodes": int(n), "feat_dim": len(_first_line(feat).split(",")) if feat.exists() else 0,
                    "labels": int(source.meta["num classes"]) if t in labelled else 0,
                    "year": (raw / NODE_FEAT_DIR / t / f"{NODE_YEAR}.csv.gz").exists()}
    relations = {}
    for relation in relations_of(source):
        folder = raw / RELATIONS_DIR / relation_dir_name(relation)
        relations[":".join(relation)] = int(_first_line(folder / NUM_EDGES_CSV))
    return {"name": source.name, "types": types, "relations": relations}


def _caches(directory: Path) -> list[dict]:
    """Manifests of the typed caches built for this dataset (one per task and settings)."""
    found = []
    for manifest in sorted(cache_parent(directory).glob(f"{GRAPH_CACHE_PREFIX}*/{GRAPH_CACHE_MANIFEST}")):
        try:
            found.append(json.loads(manifest.read_text()) | {"folder": str(manifest.parent)})
        except (OSError, ValueError):
            continue
    return found


def describe_typed(source: TypedSource, as_json_output: bool = False) -> str:
    """The ``data inspect`` text (or one JSON object) of a typed dataset."""
    summary = typed_summary(source)
    summary["caches"] = [{"folder": m["folder"], "task": m.get("task"),
                          "bytes": sum(int(a["file_bytes"]) for a in m.get("arrays", {}).values())}
                         for m in _caches(source.directory)]
    if as_json_output:
        return json.dumps(summary)
    lines = [f"{source.name}: typed graph, {len(summary['types'])} node types, {len(summary['relations'])} relations "
             f"({source.directory})"]
    for t, spec in summary["types"].items():
        feat = f"{spec['feat_dim']}-d features" if spec["feat_dim"] else "no features (learned embedding table)"
        label = f", labels ({spec['labels']} classes)" if spec["labels"] else ""
        lines.append(f"  node type {t}: {spec['nodes']} nodes, {feat}{label}{', a year per node' if spec['year'] else ''}")
    for relation, edges in summary["relations"].items():
        lines.append(f"  relation {relation}: {edges} edges")
    for cache in summary["caches"]:
        lines.append(f"  cache {cache['folder']} ({cache['task']}): {cache['bytes'] / 2**20:.1f} MiB")
    if not summary["caches"]:
        lines.append("  cache: not built yet (the first training load writes it)")
    return "\n".join(lines)
