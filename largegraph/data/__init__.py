"""Datasets as a job uses them: :func:`load_dataset` (node classification, a validated
:class:`GraphData`) and :func:`load_link_data` (link prediction, a :class:`LinkData`), each loaded and
then prepared for sampling by :func:`prepare` as the job's ``data`` settings ask. A typed dataset on
disk (OGB's heterogeneous layout: ogbn-mag, ``data synth hetero``, a typed import) gives a
:class:`HeteroGraphData` or :class:`HeteroLinkData` instead (:mod:`largegraph.data.hetero_load`)."""
from __future__ import annotations

from pathlib import Path

import torch

from largegraph.config import DataConfig
from largegraph.data import cache, footprint
from largegraph.data.graph import GraphData, check_split
from largegraph.data.hetero import HeteroGraphData, HeteroLinkData
from largegraph.data.hetero_load import load_hetero_link, load_hetero_node
from largegraph.data.hetero_ogb import find_typed
from largegraph.data.link import LinkData, load_link_dataset
from largegraph.data.ogb import load_ogb_node_dataset, resolve_dataset
from largegraph.data.prepare import prepare
from largegraph.core.errors import ConfigError, DatasetError

__all__ = ["GraphData", "LinkData", "HeteroGraphData", "HeteroLinkData", "load_dataset", "load_link_data",
           "validate", "prepare"]


def validate(data: GraphData) -> None:
    """Check features, labels and split; raise DatasetError naming the first problem found."""
    labels = data.graph.ndata["label"]
    n = data.num_nodes
    if data.sparse_feat is not None:
        bad_rows = _check_sparse(data.name, data.sparse_feat, n)
    else:
        feat = data.graph.ndata.get("feat", torch.zeros(n, 0))  # featureless: the model learns a node table
        if feat.ndim != 2 or feat.shape[0] != n:
            raise DatasetError(f"{data.name}: features have shape {tuple(feat.shape)}, expected ({n}, D)")
        bad_rows = (~torch.isfinite(feat)).any(dim=1).nonzero().flatten()
    if len(bad_rows):
        raise DatasetError(f"{data.name}: features of {len(bad_rows)} nodes contain NaN or inf "
                           f"(first: node {int(bad_rows[0])}); clean or impute them before training")
    check_split(data.name, data.split, labels, data.num_classes)


def _check_sparse(name: str, sparse, n: int) -> torch.Tensor:
    """Shape and column ids of sparse features (raises DatasetError); returns the rows with NaN/inf."""
    if sparse.num_rows != n:
        raise DatasetError(f"{name}: sparse features have {sparse.num_rows} rows, expected {n} (one per node)")
    if sparse.nnz and (int(sparse.indices.min()) < 0 or int(sparse.indices.max()) >= sparse.num_cols):
        raise DatasetError(f"{name}: sparse features hold column ids outside [0, {sparse.num_cols}); "
                           f"rewrite the dataset")
    return sparse.row_nonfinite()


def load_dataset(cfg: DataConfig) -> GraphData | HeteroGraphData:
    """The node-classification dataset a job config names, validated and prepared, mapped from the
    processed cache (built from OGB's load on first use; see :mod:`largegraph.data.cache`); a typed
    dataset gives a :class:`HeteroGraphData` on its labelled type.

    Raises:
        DatasetError: with a one-line description of what is wrong and how to fix it.
        ResourceError: the machine plainly cannot hold what the config asks for.
    """
    typed = _typed(cfg)
    if typed is not None:
        return load_hetero_node(typed, cfg)

    def build() -> GraphData:
        data = load_ogb_node_dataset(cfg.name, cfg.root)
        validate(data)
        return prepare(data, cfg)

    return _load_cached("node", cfg, build)


def load_link_data(cfg: DataConfig) -> LinkData | HeteroLinkData:
    """The link-prediction dataset a job config names, prepared (see :func:`prepare` for which
    settings links honour) and mapped from the processed cache; a typed dataset gives a
    :class:`HeteroLinkData` on ``data.relation``.

    Raises:
        DatasetError: with a one-line description of what is wrong and how to fix it.
        ConfigError: a data setting link prediction cannot honour, saying what to set instead.
        ResourceError: the machine plainly cannot hold what the config asks for.
    """
    typed = _typed(cfg)
    if typed is not None:
        return load_hetero_link(typed, cfg)
    return _load_cached("link", cfg, lambda: prepare(load_link_dataset(cfg.name, cfg.root), cfg))


def _typed(cfg: DataConfig):
    """The typed dataset ``cfg`` names, or None for an untyped one (where ``data.relation`` is refused)."""
    root = Path(cfg.root).expanduser()
    typed = find_typed(cfg.name, root) if root.is_dir() else None
    if typed is None and cfg.relation is not None:
        raise ConfigError(f"data.relation={cfg.relation} is for typed datasets, but {cfg.name} has one node and edge "
                          f"type; remove data.relation")
    return typed


def _load_cached(task: str, cfg: DataConfig, build) -> GraphData | LinkData:
    directory = resolve_dataset(cfg.name, Path(cfg.root).expanduser(), task)[0]
    folder = cache.cache_folder(directory, task, cfg)
    manifest = cache.read_manifest(folder)
    workers, available = footprint.local_workers(), footprint.available_memory()
    fp = footprint.from_manifest(manifest) if manifest else footprint.estimate(directory, task, cfg)
    mode = footprint.features_mode(cfg, fp, workers, available)
    footprint.check_fits(cfg.name, fp, mode, workers, available, building=manifest is None)
    if manifest is None:
        # A setting the task cannot honour is refused by prepare() inside build(), so no cache
        # exists for it and every load of such a config goes through that refusal.
        folder, manifest, _ = cache.ensure_cache(directory, task, cfg, build)
    return cache.open_cached(folder, manifest, mode)
