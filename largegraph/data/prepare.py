"""The one ``prepare()``: the job's data settings (:class:`largegraph.config.DataConfig`) applied to a
loaded node or link dataset.

Node graphs get what the settings ask for: reverse edges (``auto``: unless OGB already stored both
directions), self-loops and feature normalisation.

Link graphs keep their message-passing layout, because the link task and its loaders rely on it:
every edge is a training edge, and for undirected data edge ``2i+1`` is the reverse of edge ``2i``
(training uses the even ids as seeds and excludes each seed together with its twin ``id ^ 1``).
So for links:

* ``add_reverse_edges``: undirected data already holds both directions (OGB's layout), so every
  setting leaves it as it is; directed data keeps its direction under ``auto`` and ``false``, and
  ``true`` is refused: reverse edges would break the layout, and the reverse of a reciprocal training
  edge would show a batch the very edge it predicts.
* ``self_loops``: refused, since self-loop edges would become training seeds and pair up as "twins".
* ``feature_norm``: applied to the node features, if the dataset has any.

Sparse node features (:mod:`largegraph.data.sparse`) stay sparse unless ``sparse_features: densify``;
``row`` normalisation divides their stored values, and ``standardize`` is refused (subtracting column
means would make every entry non-zero).
"""
from __future__ import annotations

import dgl
import torch

from largegraph.config import DataConfig
from largegraph.data.graph import GraphData
from largegraph.data.link import LinkData
from largegraph.core.errors import ConfigError


def normalize_features(feat: torch.Tensor, kind: str) -> None:
    """In place (no second copy): ``row`` L1-normalises rows, ``standardize`` columns."""
    if kind == "row":
        feat.div_(feat.abs().sum(dim=1, keepdim=True).clamp_min(1e-12))
    elif kind == "standardize":
        feat.sub_(feat.mean(dim=0)).div_(feat.std(dim=0).clamp_min(1e-6))


def with_reverse_edges(g: dgl.DGLGraph) -> dgl.DGLGraph:
    """``dgl.add_reverse_edges(g, copy_ndata=True)``, edge for edge (self-loops not doubled), node
    data shared, without its two edge-id arrays (1.5 GB at ogbn-products scale, 61.9M edges: they
    would only map edge data, which prepared node graphs do not carry) on top of the peak of the
    first load, where both graphs are held."""
    u, v = g.edges(order="eid")
    keep = u != v
    rev_u, rev_v = (v, u) if bool(keep.all()) else (v[keep], u[keep])
    del keep
    out = dgl.graph((torch.cat([u, rev_u]), torch.cat([v, rev_v])), num_nodes=g.num_nodes(), idtype=g.idtype,
                    device=g.device)
    for key, value in g.ndata.items():
        out.ndata[key] = value
    return out


def prepare(data: GraphData | LinkData, cfg: DataConfig) -> GraphData | LinkData:
    """Apply reverse edges, self-loops and feature normalisation to ``data``'s graph, in place.

    Node data is carried over by reference, so features are never held twice. ``data.info`` records
    ``reverse_edges_added`` and ``self_loops``.

    Raises:
        ConfigError: a setting link prediction cannot honour (see the module docstring), saying what
            to set instead.
    """
    is_link = isinstance(data, LinkData)
    symmetric = data.undirected  # OGB's loader already holds both directions of each edge
    if is_link:
        _refuse_for_links(data, cfg, symmetric)
    add_reverse = not is_link and not symmetric and cfg.add_reverse_edges != "false"
    g = data.graph
    if add_reverse:
        g = with_reverse_edges(g)
    if cfg.self_loops:
        g = dgl.add_self_loop(dgl.remove_self_loop(g))
    if data.sparse_feat is not None:
        _prepare_sparse(data, g, cfg)
    if "feat" in g.ndata:
        normalize_features(g.ndata["feat"], cfg.feature_norm)
    data.graph = g
    data.info.update(reverse_edges_added=add_reverse, self_loops=cfg.self_loops)
    return data


def _prepare_sparse(data: GraphData, g: dgl.DGLGraph, cfg: DataConfig) -> None:
    """Densify sparse features (``data.sparse_features: densify``) into ``g.ndata['feat']``, or
    check that the normalisation keeps them sparse."""
    if cfg.sparse_features == "densify":
        g.ndata["feat"] = data.sparse_feat.to_dense()
        data.sparse_feat = None
        return
    if cfg.feature_norm == "standardize":
        raise ConfigError(f"data.feature_norm=standardize would make the sparse features of {data.name} dense "
                          f"(every entry minus its column mean); use feature_norm row or none, or set "
                          f"data.sparse_features=densify")
    if cfg.feature_norm == "row":
        data.sparse_feat.normalize_rows()


def _refuse_for_links(data: LinkData, cfg: DataConfig, symmetric: bool) -> None:
    if cfg.self_loops:
        raise ConfigError(f"data.self_loops=true cannot be used for link prediction ({data.name}): self-loop edges "
                          f"would become training edges and break the reverse-edge pairing; set data.self_loops=false")
    if cfg.add_reverse_edges == "true" and not symmetric:
        raise ConfigError(f"data.add_reverse_edges=true cannot be used for link prediction on {data.name}, a directed "
                          f"dataset: reverse edges would join the training edges the task scores (and show a "
                          f"reciprocal edge to the batch predicting it); set data.add_reverse_edges=auto to keep "
                          f"the edge directions")
