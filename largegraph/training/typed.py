"""Which implementations a job's dataset takes: the one place that asks whether a dataset is typed.

A typed dataset (:class:`~largegraph.data.hetero.HeteroGraphData`, :class:`~largegraph.data.hetero.HeteroLinkData`)
takes typed models (``model.arch`` rgcn, rgat, hsage), typed loaders and the typed tasks; an untyped
one the homogeneous ones. The assembly and the backend look the implementations up in their tables
by :func:`is_typed`; nothing else asks. ``model.arch: mlp`` on a typed node dataset trains on the
target type's features alone, through the homogeneous stack (:func:`fit_dataset` hands it that view).
"""
from __future__ import annotations

import dgl

from largegraph.config import GRAPH_FREE_ARCHS, JobConfig
from largegraph.core.errors import ConfigError
from largegraph.data.graph import GraphData
from largegraph.data.hetero import HeteroGraphData, HeteroLinkData
from largegraph.models import TYPED_ARCHS


def is_typed(data) -> bool:
    """Whether ``data`` has node types and relations (takes the typed implementations)."""
    return isinstance(data, (HeteroGraphData, HeteroLinkData))


def check_fits(cfg: JobConfig, data) -> None:
    """Refuse a typed setting on an untyped dataset and the reverse (one line, exit 2).

    Raises:
        ConfigError: saying which setting to change.
    """
    arch = cfg.model.arch
    if not is_typed(data):
        if arch in TYPED_ARCHS:
            raise ConfigError(f"model.arch {arch} is for typed graphs, but {data.name} has one node type and one "
                              f"relation; use model.arch sage, gcn, gat, gin or mlp")
        if cfg.sampler.relation_fanouts:
            raise ConfigError(f"sampler.relation_fanouts is for typed graphs, but {data.name} has one relation; "
                              f"remove it and use sampler.fanouts")
        return
    if arch in TYPED_ARCHS or (arch in GRAPH_FREE_ARCHS and isinstance(data, HeteroGraphData)):
        return
    raise ConfigError(f"{data.name} is a typed graph ({len(data.graph.ntypes)} node types); model.arch {arch} "
                      f"takes one node type: use model.arch {', '.join(TYPED_ARCHS)}"
                      + (" (or mlp on the target type's features)" if isinstance(data, HeteroGraphData) else ""))


def target_view(data: HeteroGraphData) -> GraphData:
    """The target type alone, without edges: what an MLP on its features trains on (the baseline
    typed models are compared with). Shares the feature and label tensors."""
    nodes = data.graph.nodes[data.target].data
    graph = dgl.graph(([], []), num_nodes=data.num_nodes)
    graph.ndata["feat"], graph.ndata["label"] = nodes["feat"], nodes["label"]
    return GraphData(name=data.name, graph=graph, num_classes=data.num_classes, split=data.split, metric=data.metric,
                     evaluator_name=data.evaluator_name, info=data.info, storage=data.storage)


def fit_dataset(cfg: JobConfig, data):
    """``data`` as ``cfg.model`` trains on it: checked (:func:`check_fits`), and a typed node dataset
    seen through :func:`target_view` by an encoder that passes no messages."""
    check_fits(cfg, data)
    if isinstance(data, HeteroGraphData) and cfg.model.arch in GRAPH_FREE_ARCHS:
        if "feat" not in data.graph.nodes[data.target].data:
            raise ConfigError(f"model.arch {cfg.model.arch} trains on {data.target}'s features, but {data.name} has "
                              f"none for {data.target}; use model.arch {', '.join(TYPED_ARCHS)}")
        if cfg.sampler.relation_fanouts:
            raise ConfigError(f"model.arch {cfg.model.arch} passes no messages; remove sampler.relation_fanouts")
        return target_view(data)
    return data
