"""``largegraph partition``: a job's dataset cut into parts for DGL's distributed engine (DistDGL).

The prepared graph (the same one a single-machine run trains on: reverse edges, self-loops and
feature settings applied) goes through ``dgl.distributed.partition_graph`` with METIS (or random
assignment), balancing training nodes and edges across parts. Node data travels with the partitions:
``feat``, ``label`` and the ``train_mask``/``val_mask``/``test_mask`` of the split. For link
prediction the edge split is written beside them (``link_split.pt``) in the partitioned node ids,
with each edge's reverse in partitioned edge ids (partitioning renumbers edges, and the reverse-edge
pairing the link task relies on must survive that).

The output folder holds DGL's ``<name>.json`` and ``part<i>/`` folders, ``orig_node_ids.pt`` (the
prepared graph's id of every partitioned node id) and ``largegraph-partition.json``:
what was partitioned (the processed cache's key, parts, method) and the per-partition figures. The
same command on the same input reuses the partitions unless ``--force``.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import dgl
import torch

from largegraph.config import JobConfig
from largegraph.core.errors import ConfigError
from largegraph.core.fsutil import atomic_write_text
from largegraph.backends.distdgl.partfiles import DEFAULT_NTYPE, LINK_SPLIT, MASKS, NODE_IDS, STAMP
from largegraph.data.hetero import HeteroGraphData
from largegraph.training.typed import is_typed

log = logging.getLogger(__name__)
# (source type, destination type, source ids, destination ids) of one relation, in partitioned ids
TypedEdges = tuple[str, str, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class PartStats:
    """One partition's share: nodes it owns, in-edges of those nodes, halo nodes (neighbours owned by
    other partitions) and split counts."""

    part: int
    nodes: int
    edges: int
    halo: int
    train: int
    valid: int
    test: int


def partition_dataset(cfg: JobConfig, parts: int, out: Path, method: str = "metis", force: bool = False) -> dict:
    """Partition ``cfg``'s dataset into ``parts`` parts under ``out`` (reused when already there).

    Returns:
        The stamp: input key, parts, method, per-partition figures and the edge cut.

    Raises:
        ConfigError: an output folder that holds something else, or a part count the graph cannot take.
    """
    from largegraph.backends.local import LocalBackend

    out = Path(out)
    data = LocalBackend().load_data(cfg)  # the whole prepared dataset, whatever mode the job trains in
    key = {"cache": data.storage.cache, "task": cfg.task, "parts": parts, "method": method}
    stamp_path = out / STAMP
    if stamp_path.exists() and not force:
        stamp = json.loads(stamp_path.read_text())
        if stamp.get("key") == key:
            log.info(f"reusing the partitions in {out} (same dataset, parts and method; --force redoes them)")
            _report(stamp)
            return stamp
    if out.exists() and any(out.iterdir()) and not stamp_path.exists():
        raise ConfigError(f"{out} is not empty and holds no largegraph partitions; choose an empty --out folder")
    if parts > data.graph.num_nodes():
        raise ConfigError(f"--parts {parts} is more than the graph's {data.graph.num_nodes()} nodes")
    shutil.rmtree(out, ignore_errors=True)
    stamp = _partition(cfg, data, parts, out, method, key)
    atomic_write_text(stamp_path, json.dumps(stamp, indent=1))
    _report(stamp)
    return stamp


def _full_graph(data, link: bool) -> dgl.DGLGraph:
    """The prepared graph with every sparse format allowed (partitioning needs COO) and its features.
    Link graphs keep their edge ids (edge 2i+1 reverses 2i); node graphs (CSC only) need none."""
    g = data.graph
    if data.sparse_feat is not None:
        # DGL's partitioner stores node data as dense per-node rows only
        raise ConfigError(f"{data.name} keeps its features sparse, which partitions cannot hold; set "
                          f"data.sparse_features=densify to partition it with dense features")
    src, dst = g.find_edges(torch.arange(g.num_edges())) if link else g.edges(order="srcdst")
    full = dgl.graph((src, dst), num_nodes=g.num_nodes())
    if "feat" in g.ndata:
        full.ndata["feat"] = g.ndata["feat"].float()
    return full


def _partition(cfg: JobConfig, data, parts: int, out: Path, method: str, key: dict) -> dict:
    if is_typed(data):
        return _partition_typed(cfg, data, parts, out, method, key)
    link = cfg.task == "link_prediction"
    g = _full_graph(data, link)
    balance = None
    if not link:
        g.ndata["label"] = data.graph.ndata["label"].clone()
        g.ndata.update(_masks(g.num_nodes(), data.split))
        balance = g.ndata["train_mask"]
    name = out.name
    log.info(f"partitioning {data.describe()} into {parts} parts ({method}) under {out}")
    with contextlib.redirect_stdout(io.StringIO()):  # DGL prints a page of timings per call
        orig_nids, orig_eids = dgl.distributed.partition_graph(
            g, name, parts, str(out), part_method=method, balance_ntypes=balance, balance_edges=True,
            return_mapping=True)
    # what a partitioned node id was in the prepared graph (and so in predictions and mappings)
    torch.save(orig_nids, out / NODE_IDS)
    new_of_orig = _inverse(orig_nids)
    src, dst = g.edges()
    edges = [(DEFAULT_NTYPE, DEFAULT_NTYPE, new_of_orig[src], new_of_orig[dst])]
    splits = {} if link else {p: new_of_orig[data.split[p]] for p in MASKS}
    if link:
        _write_link_split(out, data, new_of_orig, orig_eids)
    return _stamp(cfg, data, out, key, edges, {DEFAULT_NTYPE: splits}, {})


def _stamp(cfg: JobConfig, data, out: Path, key: dict, edges: list[TypedEdges], splits: dict[str, dict],
           extra: dict) -> dict:
    """What ``largegraph partition`` records: the dataset as trainers need it, the per-partition figures
    and the edge cut (``edges`` and ``splits`` in partitioned ids; ``extra``: more of the dataset)."""
    name = out.name
    owner = _owners(out / f"{name}.json")
    stats = [_part_stats(i, owner, edges, splits) for i in range(key["parts"])]
    cut = sum(int((owner[s][src] != owner[d][dst]).sum()) for s, d, src, dst in edges)
    # what a trainer on the partitions needs to know of the dataset without loading it
    dataset = {"name": data.name, "num_classes": data.num_classes, "metric": data.metric,
               "evaluator_name": data.evaluator_name, **extra}
    return {"key": key, "graph_name": name, "part_config": str(out / f"{name}.json"), "task": cfg.task,
            "dataset": dataset, "num_nodes": sum(len(o) for o in owner.values()),
            "num_edges": sum(len(e[2]) for e in edges), "edge_cut": cut, "parts": [s.__dict__ for s in stats]}


def _owners(part_config: Path) -> dict[str, torch.Tensor]:
    """Partition of every (partitioned) node id of each node type, from DGL's node-id ranges (each
    partition's nodes of a type take the next contiguous range of that type's ids)."""
    meta = json.loads(part_config.read_text())
    return {t: torch.repeat_interleave(torch.arange(len(ranges)), torch.tensor([end - start for start, end in ranges]))
            for t, ranges in meta["node_map"].items()}


def _part_stats(i: int, owner: dict[str, torch.Tensor], edges: list[TypedEdges], splits: dict[str, dict]) -> PartStats:
    halo: dict[str, list[torch.Tensor]] = {}
    owned_edges = 0
    for s, d, src, dst in edges:
        mine = owner[d][dst] == i  # DGL assigns an edge to its destination's partition
        owned_edges += int(mine.sum())
        halo.setdefault(s, []).append(src[mine & (owner[s][src] != i)])
    counts = {p: int((owner[t][ids] == i).sum()) for t, by_part in splits.items() for p, ids in by_part.items()}
    return PartStats(i, sum(int((o == i).sum()) for o in owner.values()), owned_edges,
                     sum(len(torch.unique(torch.cat(h))) for h in halo.values()), counts.get("train", 0),
                     counts.get("valid", 0), counts.get("test", 0))


def _typed_graph(data: HeteroGraphData) -> dgl.DGLHeteroGraph:
    """The typed graph with COO allowed, each type's features, and labels and split masks on the target."""
    g = data.graph
    full = dgl.heterograph({r: g.edges(etype=r, order="srcdst") for r in g.canonical_etypes},
                           num_nodes_dict={t: g.num_nodes(t) for t in g.ntypes})
    for t in g.ntypes:
        if "feat" in g.nodes[t].data:
            full.nodes[t].data["feat"] = g.nodes[t].data["feat"].float()
    nodes = full.nodes[data.target].data
    nodes["label"] = g.nodes[data.target].data["label"].clone()
    nodes.update(_masks(data.num_nodes, data.split))
    return full


def _masks(num_nodes: int, split: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The split as boolean node masks (node data travels with the partitions; id lists do not)."""
    masks = {}
    for part, mask in MASKS.items():
        masks[mask] = torch.zeros(num_nodes, dtype=torch.bool)
        masks[mask][split[part]] = True
    return masks


def _partition_typed(cfg: JobConfig, data, parts: int, out: Path, method: str, key: dict) -> dict:
    """Partitions of a typed graph: node classification on ``data.target``, every type's features kept
    per type (a ``DistGraph`` with the same node types and relations); ``orig_node_ids.pt`` maps ids per type."""
    if not isinstance(data, HeteroGraphData):
        raise ConfigError("distdgl trains typed graphs for node classification only; partition "
                          f"{data.name} with task: node_classification, or train link prediction locally")
    g = _typed_graph(data)
    train = g.nodes[data.target].data["train_mask"]
    # balance the target type's training nodes (the others by type), as DGL's examples do for ogbn-mag
    balance = {data.target: train.long()} if 0 < int(train.sum()) < len(train) else None
    log.info(f"partitioning {data.describe()} into {parts} parts ({method}) under {out}")
    with contextlib.redirect_stdout(io.StringIO()):
        orig_nids, _ = dgl.distributed.partition_graph(
            g, out.name, parts, str(out), part_method=method, balance_ntypes=balance, balance_edges=True,
            return_mapping=True)
    torch.save(orig_nids, out / NODE_IDS)
    new_of_orig = {t: _inverse(ids) for t, ids in orig_nids.items()}
    edges = []
    for s, r, d in g.canonical_etypes:
        src, dst = g.edges(etype=(s, r, d))
        edges.append((s, d, new_of_orig[s][src], new_of_orig[d][dst]))
    splits = {data.target: {p: new_of_orig[data.target][data.split[p]] for p in MASKS}}
    return _stamp(cfg, data, out, key, edges, splits, {"target": data.target})


def _inverse(orig: torch.Tensor) -> torch.Tensor:
    """The partitioned id of every original id (``orig``: the original id of every partitioned id)."""
    new = torch.empty_like(orig)
    new[orig] = torch.arange(len(orig))
    return new


def _write_link_split(out: Path, data, new_of_orig: torch.Tensor, orig_eids: torch.Tensor) -> None:
    """The link split in partitioned node ids, and every partitioned edge's reverse edge id."""
    split = {part: {k: (new_of_orig[v] if not v.is_floating_point() else v) for k, v in d.items()}
             for part, d in data.split.items()}
    reverse = _inverse(orig_eids)[orig_eids ^ 1] if data.undirected else None
    torch.save({"split": split, "split_style": data.split_style, "metric": data.metric,
                "evaluator_name": data.evaluator_name, "reverse_eids": reverse}, out / LINK_SPLIT)


def _report(stamp: dict) -> None:
    log.info(f"{'part':>4} {'nodes':>10} {'edges':>12} {'halo':>10} {'train':>8} {'valid':>8} {'test':>8}")
    for p in stamp["parts"]:
        log.info(f"{p['part']:>4} {p['nodes']:>10,} {p['edges']:>12,} {p['halo']:>10,} {p['train']:>8,} "
            f"{p['valid']:>8,} {p['test']:>8,}")
    e = stamp["num_edges"]
    log.info(f"edge cut: {stamp['edge_cut']:,} of {e:,} edges ({100 * stamp['edge_cut'] / max(e, 1):.1f}%), "
        f"{stamp['key']['method']}; part config {stamp['part_config']}")
