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
from largegraph.backends.distdgl.partfiles import LINK_SPLIT, MASKS, NODE_IDS, STAMP

log = logging.getLogger(__name__)



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
    link = cfg.task == "link_prediction"
    g = _full_graph(data, link)
    balance = None
    if not link:
        g.ndata["label"] = data.graph.ndata["label"].clone()
        for part, mask in MASKS.items():
            m = torch.zeros(g.num_nodes(), dtype=torch.bool)
            m[data.split[part]] = True
            g.ndata[mask] = m
        balance = g.ndata["train_mask"]
    name = out.name
    log.info(f"partitioning {data.describe()} into {parts} parts ({method}) under {out}")
    with contextlib.redirect_stdout(io.StringIO()):  # DGL prints a page of timings per call
        orig_nids, orig_eids = dgl.distributed.partition_graph(
            g, name, parts, str(out), part_method=method, balance_ntypes=balance, balance_edges=True,
            return_mapping=True)
    # what a partitioned node id was in the prepared graph (and so in predictions and mappings)
    torch.save(orig_nids, out / NODE_IDS)
    new_of_orig = torch.empty_like(orig_nids)
    new_of_orig[orig_nids] = torch.arange(len(orig_nids))
    owner = _owners(out / f"{name}.json", g.num_nodes())
    src, dst = g.edges()
    src, dst = new_of_orig[src], new_of_orig[dst]
    splits = {} if link else {p: new_of_orig[data.split[p]] for p in MASKS}
    if link:
        _write_link_split(out, data, new_of_orig, orig_eids)
    stats = [_part_stats(i, owner, src, dst, splits) for i in range(parts)]
    cut = int((owner[src] != owner[dst]).sum())
    # what a trainer on the partitions needs to know of the dataset without loading it
    dataset = {"name": data.name, "num_classes": data.num_classes, "metric": data.metric,
               "evaluator_name": data.evaluator_name}
    return {"key": key, "graph_name": name, "part_config": str(out / f"{name}.json"), "task": cfg.task,
            "dataset": dataset,
            "num_nodes": g.num_nodes(), "num_edges": g.num_edges(), "edge_cut": cut,
            "parts": [s.__dict__ for s in stats]}


def _owners(part_config: Path, num_nodes: int) -> torch.Tensor:
    """Partition of every (partitioned) node id, from DGL's contiguous node-id ranges."""
    meta = json.loads(part_config.read_text())
    owner = torch.empty(num_nodes, dtype=torch.int64)
    ranges = meta["node_map"]["_N"]
    for i, (start, end) in enumerate(ranges):
        owner[start:end] = i
    return owner


def _part_stats(i: int, owner: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, splits: dict) -> PartStats:
    mine = owner[dst] == i  # DGL assigns an edge to its destination's partition
    halo = torch.unique(src[mine & (owner[src] != i)])
    counts = {p: int((owner[ids] == i).sum()) for p, ids in splits.items()}
    return PartStats(i, int((owner == i).sum()), int(mine.sum()), len(halo), counts.get("train", 0),
                     counts.get("valid", 0), counts.get("test", 0))


def _write_link_split(out: Path, data, new_of_orig: torch.Tensor, orig_eids: torch.Tensor) -> None:
    """The link split in partitioned node ids, and every partitioned edge's reverse edge id."""
    split = {part: {k: (new_of_orig[v] if not v.is_floating_point() else v) for k, v in d.items()}
             for part, d in data.split.items()}
    new_eid_of_orig = torch.empty_like(orig_eids)
    new_eid_of_orig[orig_eids] = torch.arange(len(orig_eids))
    reverse = new_eid_of_orig[orig_eids ^ 1] if data.undirected else None
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
