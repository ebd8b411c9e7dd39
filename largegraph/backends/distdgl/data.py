"""The dataset as a distdgl trainer sees it: a ``DistGraph`` and this trainer's share of each split.

Nothing of the graph is loaded here: the graph servers hold the partitions, and a trainer reads
topology, features and labels through the ``DistGraph``. Each trainer takes the split nodes that its
own machine's partition owns (``dgl.distributed.node_split``), so it samples mostly local data.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import torch

from largegraph.config import JobConfig
from largegraph.data.graph import GraphData
from largegraph.data.hetero import HeteroGraphData
from largegraph.data.link import LinkData
from largegraph.backends.distdgl.partfiles import DEFAULT_NTYPE, LINK_SPLIT, MASKS, NODE_IDS, check_partitions


@dataclass
class DistNodeData(GraphData):
    """A node trainer's view: ``graph`` a ``DistGraph``, ``split`` this trainer's share of each split.

    Attributes:
        share: what this trainer walks (``partition``, ``train_nodes``, ``own_partition``: how many
            of them its own partition holds), as ``distdgl/trainers.json`` records it.
    """

    share: dict[str, int] = field(default_factory=dict)


@dataclass
class DistLinkData(LinkData):
    """A link trainer's view: the ``DistGraph`` of training edges and the edge split (partitioned ids).

    Attributes:
        share: what this trainer walks (``partition``, ``train_edges``, ``own_partition``).
        train_seeds: this trainer's training edges (one direction of each undirected pair).
        reverse_eids: every edge's reverse edge id (undirected data), else None.
    """

    share: dict[str, int] = field(default_factory=dict)
    train_seeds: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))
    reverse_eids: torch.Tensor | None = None


@dataclass
class DistTypedNodeData(HeteroGraphData):
    """A node trainer's view of a typed graph: ``graph`` a ``DistGraph`` with the dataset's node types
    and relations, ``split`` this trainer's share of each split (ids of ``target`` nodes).

    Attributes:
        share: as for :class:`DistNodeData`.
    """

    share: dict[str, int] = field(default_factory=dict)


def initialize(ip_config: str) -> None:
    """Join DGL's distributed engine (a graph server never returns from this: it serves, then exits)."""
    import logging

    import dgl

    # DGL warns about every network interface without an IPv4 address while it looks for this
    # machine's: normal on any host with a bridge or a tunnel, and not the user's problem.
    logging.getLogger("dgl-distributed-socket").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):  # DGL announces itself on stdout
        dgl.distributed.initialize(ip_config)


def load_dist_data(cfg: JobConfig) -> DistNodeData | DistLinkData | DistTypedNodeData:
    """This trainer's view of the partitioned dataset (after :func:`initialize`); typed when the
    partitions are of a typed graph (their stamp names the classified node type)."""
    import dgl

    stamp = check_partitions(cfg)
    meta = stamp["dataset"]
    g = dgl.distributed.DistGraph(stamp["graph_name"], part_config=cfg.distributed.part_config)
    book = g.get_partition_book()
    if cfg.task == "link_prediction":
        return _link_data(cfg, stamp, g, book)
    target = meta.get("target")
    split, share = _node_split(g.nodes[target].data if target else g.ndata, book, target or DEFAULT_NTYPE)
    common = dict(name=meta["name"], graph=g, num_classes=int(meta["num_classes"]), split=split,
                  metric=meta["metric"], evaluator_name=meta["evaluator_name"], info=_provenance(cfg, stamp),
                  share=share)
    return DistTypedNodeData(target=target, **common) if target else DistNodeData(**common)


def _node_split(nodes, book, ntype: str) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """This trainer's share of each split of ``ntype`` nodes (``nodes``: their data, the split masks),
    and the figures of its training share."""
    import dgl

    split = {part: dgl.distributed.node_split(nodes[mask], book, ntype=ntype, force_even=True)
             for part, mask in MASKS.items()}
    train = split["train"]
    # how much of this trainer's sampling starts from its own machine's partition
    own = int((book.nid2partid(train, ntype) == book.partid).sum()) if len(train) else 0
    return split, {"partition": int(book.partid), "train_nodes": len(train), "own_partition": own}


def _provenance(cfg: JobConfig, stamp: dict) -> dict:
    return {"parts": len(stamp["parts"]), "part_config": cfg.distributed.part_config}


def original_ids(part_config: str) -> torch.Tensor | dict[str, torch.Tensor]:
    """The dataset's node id of every partitioned node id (predictions are written in dataset ids);
    per node type for a typed graph."""
    return torch.load(Path(part_config).parent / NODE_IDS)


def _link_data(cfg: JobConfig, stamp: dict, g, book) -> DistLinkData:
    """A link trainer's view: the DistGraph of training edges, the edge split (partitioned node ids)
    and this trainer's share of the training edges (one direction of each undirected pair)."""
    import dgl

    saved = torch.load(Path(cfg.distributed.part_config).parent / LINK_SPLIT)
    reverse = saved["reverse_eids"]
    every = torch.arange(g.num_edges())
    # one seed per undirected pair (the lower id of the two), or every edge of a directed graph
    one_way = every < reverse if reverse is not None else torch.ones(g.num_edges(), dtype=torch.bool)
    seeds = dgl.distributed.edge_split(one_way, book, force_even=True)
    own = int((book.eid2partid(seeds) == book.partid).sum()) if len(seeds) else 0
    share = {"partition": int(book.partid), "train_edges": len(seeds), "own_partition": own}
    meta = stamp["dataset"]
    return DistLinkData(name=meta["name"], graph=g, num_nodes=g.num_nodes(), split=saved["split"],
                        split_style=saved["split_style"], metric=saved["metric"],
                        evaluator_name=saved["evaluator_name"], info=_provenance(cfg, stamp),
                        undirected=reverse is not None, share=share, train_seeds=seeds, reverse_eids=reverse)
