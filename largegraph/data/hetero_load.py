"""Typed datasets as a job uses them: read with OGB's loader (:mod:`largegraph.data.hetero_ogb`),
prepared as the job's ``data`` settings ask, cached and mapped (:mod:`largegraph.data.hetero_cache`).

* Node classification: :class:`HeteroGraphData` on the dataset's labelled type.
* Link prediction: :class:`HeteroLinkData` on ``data.relation``. Its edges are split train/valid/test
  (80/10/10, seeded by the relation's name, so every run, worker and machine draws the same split,
  which the cache then stores); valid and test edges each get :data:`NUM_NEGATIVES` negatives drawn
  from the destination type (OGB's citation2 style, scored by MRR); the message graph holds only
  the training edges of the relation (and their reverse), every other relation whole.

Preparation: ``data.add_reverse_edges`` ``auto``/``true`` add a ``rev_<rel>`` relation for every
relation (OGB's typed datasets store one direction), ``false`` none; ``data.feature_norm`` applies to
every featured type; ``data.self_loops`` is refused (typed models keep a self-connection per type).
"""
from __future__ import annotations

import zlib

import dgl
import numpy as np
import torch

from largegraph.config import DataConfig
from largegraph.core.errors import ConfigError, DatasetError
from largegraph.data.cache import ensure_cache
from largegraph.data.graph import check_split
from largegraph.data.footprint import Footprint, available_memory, check_fits, features_mode, local_workers
from largegraph.data.dataset_format import SPLITS, SOURCE_NODE, TARGET_NODE, TARGET_NODE_NEG
from largegraph.data.hetero import HeteroGraphData, HeteroLinkData, Relation, reverse_name
from largegraph.data.hetero_cache import (LINK_TASK, NODE_TASK, cached_bytes, open_hetero_cached,
                                          write_hetero_cache)
from largegraph.data.hetero_ogb import TypedGraph, TypedSource, read_typed, relations_of
from largegraph.data.prepare import normalize_features

__all__ = ["load_hetero_node", "load_hetero_link", "prepare_hetero", "resolve_relation"]

LINK_SPLIT_RATIOS = (0.8, 0.1, 0.1)
NUM_NEGATIVES = 100


def load_hetero_node(source: TypedSource, cfg: DataConfig) -> HeteroGraphData:
    """Node classification on the labelled type of typed dataset ``source``, cached and mapped.

    Raises:
        DatasetError: the dataset has no labels, or OGB cannot read it.
        ConfigError: a data setting typed graphs cannot honour.
    """
    def build() -> HeteroGraphData:
        typed = read_typed(source)
        if typed.target is None:
            raise DatasetError(f"{source.name} has no node labels, so it cannot train node classification; "
                               f"import it with --labels FILE:COLUMN, or train link prediction on one relation")
        data = HeteroGraphData(name=source.name, graph=typed.graph, target=typed.target,
                               num_classes=typed.num_classes, split=typed.split,
                               evaluator_name=source.name if source.official else "ogbn-mag",
                               info={"dir": str(source.directory), "official": source.official})
        _validate(data)
        data.graph = prepare_hetero(data.graph, cfg, data.info)
        return data

    _refuse_self_loops(source.name, cfg)
    return _load_cached(source, NODE_TASK, cfg, build)


def load_hetero_link(source: TypedSource, cfg: DataConfig) -> HeteroLinkData:
    """Link prediction on ``data.relation`` of typed dataset ``source``, cached and mapped.

    Raises:
        DatasetError: ``data.relation`` names no relation of the dataset, or it has too few edges.
        ConfigError: ``data.relation`` unset on a dataset of several relations; a setting typed
            graphs cannot honour.
    """
    _refuse_self_loops(source.name, cfg)
    if cfg.relation is None:
        relations = relations_of(source)
        if len(relations) != 1:
            raise ConfigError(f"{source.name} has {len(relations)} relations; set data.relation to the one to predict "
                              f"({', '.join(':'.join(r) for r in relations)})")

    def build() -> HeteroLinkData:
        typed = read_typed(source)
        relation = resolve_relation(typed.graph.canonical_etypes, cfg.relation, source.name)
        graph, split = _split_relation(typed, relation)
        data = HeteroLinkData(name=source.name, graph=graph, target=relation, split=split,
                              info={"dir": str(source.directory), "official": source.official})
        data.graph = prepare_hetero(data.graph, cfg, data.info)
        return data

    return _load_cached(source, f"{LINK_TASK}:{cfg.relation or ''}", cfg, build)


def resolve_relation(relations: list[Relation], spec: str | None, name: str) -> Relation:
    """The relation ``spec`` names: ``src:rel:dst`` or a relation name unique in ``relations``.

    Raises:
        DatasetError: no such relation, or a bare name that several relations share.
    """
    known = ", ".join(":".join(r) for r in relations)
    if spec is None:
        return relations[0]
    parts = tuple(spec.split(":"))
    matches = [r for r in relations if r == parts] if len(parts) == 3 else [r for r in relations if r[1] == spec]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise DatasetError(f"data.relation {spec!r} names {len(matches)} relations of {name}; write it as src:rel:dst "
                           f"({known})")
    raise DatasetError(f"data.relation {spec!r} is not a relation of {name} ({known})")


def prepare_hetero(graph: dgl.DGLHeteroGraph, cfg: DataConfig, info: dict) -> dgl.DGLHeteroGraph:
    """Reverse relations and feature normalisation as ``cfg`` asks (see the module docstring); node
    data is carried over by reference. Records ``reverse_edges_added`` in ``info``."""
    add_reverse = cfg.add_reverse_edges != "false"
    relations = list(graph.canonical_etypes)
    data_dict = {r: graph.edges(etype=r, order="eid") for r in relations}
    if add_reverse:
        for relation in relations:
            reverse = reverse_name(relation)
            if reverse in data_dict or any(r[1] == reverse[1] for r in relations):
                raise DatasetError(f"relation {':'.join(relation)} cannot get its reverse {':'.join(reverse)}: the "
                                   f"dataset already has a relation named {reverse[1]}; set data.add_reverse_edges=false")
            src, dst = data_dict[relation]
            data_dict[reverse] = (dst, src)
    out = dgl.heterograph(data_dict, num_nodes_dict={t: graph.num_nodes(t) for t in graph.ntypes},
                          idtype=graph.idtype)
    for t in graph.ntypes:
        for key, value in graph.nodes[t].data.items():
            out.nodes[t].data[key] = value
        if "feat" in out.nodes[t].data:
            normalize_features(out.nodes[t].data["feat"], cfg.feature_norm)
    info.update(reverse_edges_added=add_reverse, self_loops=False)
    return out


def _refuse_self_loops(name: str, cfg: DataConfig) -> None:
    if cfg.self_loops:
        raise ConfigError(f"data.self_loops=true does not apply to {name}, a typed graph (typed models keep a "
                          f"self-connection per node type); set data.self_loops=false")


def _validate(data: HeteroGraphData) -> None:
    """Finite features on every featured type; the target's split and labels (:func:`check_split`)."""
    for t in data.graph.ntypes:
        feat = data.graph.nodes[t].data.get("feat")
        if feat is not None and not bool(torch.isfinite(feat).all()):
            bad = int((~torch.isfinite(feat)).any(dim=1).nonzero()[0, 0])
            raise DatasetError(f"{data.name}: features of node type {t} contain NaN or inf (first: node {bad}); "
                               f"clean or impute them before training")
    check_split(f"{data.name} ({data.target})", data.split, data.graph.nodes[data.target].data["label"],
                data.num_classes)


def _split_relation(typed: TypedGraph, relation: Relation) -> tuple[dgl.DGLHeteroGraph, dict]:
    """The relation's edges split (seeded by its name) and the graph without its held-out edges."""
    graph = typed.graph
    src, dst = graph.edges(etype=relation, order="eid")
    num = len(src)
    if num < 10:
        raise DatasetError(f"relation {':'.join(relation)} has {num} edges; link prediction needs at least 10")
    rng = np.random.default_rng(zlib.crc32(":".join(relation).encode()))
    perm = torch.from_numpy(rng.permutation(num))
    n_valid, n_test = (max(1, int(round(num * r))) for r in LINK_SPLIT_RATIOS[1:])
    parts = {"valid": perm[:n_valid], "test": perm[n_valid:n_valid + n_test],
             "train": torch.sort(perm[n_valid + n_test:]).values}
    num_dst = graph.num_nodes(relation[2])
    split = {}
    for part in SPLITS:
        ids = parts[part]
        split[part] = {SOURCE_NODE: src[ids].to(torch.int64), TARGET_NODE: dst[ids].to(torch.int64)}
        if part != "train":
            neg = rng.integers(0, num_dst, size=(len(ids), min(NUM_NEGATIVES, num_dst)))
            split[part][TARGET_NODE_NEG] = torch.from_numpy(neg)
    held_out = torch.cat([parts["valid"], parts["test"]])
    return dgl.remove_edges(graph, held_out.to(graph.idtype), etype=relation), split


def _load_cached(source: TypedSource, task: str, cfg: DataConfig, build) -> HeteroGraphData | HeteroLinkData:
    folder, manifest, _ = ensure_cache(source.directory, task, cfg, build, write_hetero_cache)
    sizes = cached_bytes(manifest)
    fp = Footprint(
        num_nodes=sum(manifest["num_nodes"].values()), num_edges=sum(manifest["num_edges"].values()),
        feat_dim=0, topology=sizes["topology"], features=sizes["features"], labels=sizes["labels"],
        build_peak=0, exact=True)
    workers, available = local_workers(), available_memory()
    mode = features_mode(cfg, fp, workers, available)
    check_fits(source.name, fp, mode, workers, available, building=False)
    return open_hetero_cached(folder, manifest, mode)

