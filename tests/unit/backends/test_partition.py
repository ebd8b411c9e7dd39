"""``largegraph partition``: METIS cuts fewer edges than random assignment, node data and splits
travel with the partitions, link splits keep their reverse-edge pairing, and a rerun reuses."""
from __future__ import annotations

import json
import logging

import dgl
import pytest
import torch

from largegraph.config import JobConfig
from largegraph.data import load_dataset, load_link_data
from largegraph.core.errors import ConfigError
from largegraph.backends.distdgl.partition import LINK_SPLIT, MASKS, NODE_IDS, STAMP, partition_dataset


def _job(root, name, task="node_classification") -> JobConfig:
    return JobConfig(name="p", task=task, data={"name": name, "root": str(root)},
                     model={"arch": "sage", "hidden": 8, "num_layers": 2}, sampler={"fanouts": [5, 5]})


class _Lines(logging.Handler):
    """The partitioner's log lines, whatever the ``largegraph`` logger's set-up."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_metis_cuts_fewer_edges_than_random_and_reports_each_part(synth_root, tmp_path):
    cfg = _job(synth_root, "tiny")
    metis = partition_dataset(cfg, 2, tmp_path / "m" / "tiny", "metis")
    rand = partition_dataset(cfg, 2, tmp_path / "r" / "tiny", "random")
    assert metis["edge_cut"] < rand["edge_cut"]
    data = load_dataset(cfg.data)
    for stamp in (metis, rand):
        parts = stamp["parts"]
        assert sum(p["nodes"] for p in parts) == data.num_nodes
        assert sum(p["edges"] for p in parts) == data.graph.num_edges()
        assert sum(p["train"] for p in parts) == len(data.split["train"])
        assert all(p["halo"] > 0 for p in parts)


def test_node_data_and_split_travel_with_the_partitions(synth_root, tmp_path):
    cfg = _job(synth_root, "tiny")
    stamp = partition_dataset(cfg, 2, tmp_path / "tiny")
    data = load_dataset(cfg.data)
    orig = torch.load(tmp_path / "tiny" / NODE_IDS, weights_only=True)
    in_split = {p: torch.zeros(data.num_nodes, dtype=torch.bool) for p in MASKS}
    for p, ids in data.split.items():
        in_split[p][ids] = True
    seen = []
    for i in range(2):
        g, node_feats, *_ = dgl.distributed.load_partition(stamp["part_config"], i)
        feats = {k.split("/")[-1]: v for k, v in node_feats.items()}
        owned = orig[g.ndata[dgl.NID][g.ndata["inner_node"].bool()]]  # prepared-graph ids, in order
        assert torch.equal(feats["feat"], data.graph.ndata["feat"][owned])
        assert torch.equal(feats["label"], data.graph.ndata["label"][owned])
        for p, mask in MASKS.items():
            assert torch.equal(feats[mask].bool(), in_split[p][owned])
        seen.append(owned)
    assert torch.equal(torch.sort(torch.cat(seen)).values, torch.arange(data.num_nodes))


def test_a_rerun_reuses_and_force_redoes(synth_root, tmp_path):
    cfg = _job(synth_root, "tiny")
    out = tmp_path / "tiny"
    partition_dataset(cfg, 2, out)
    before = (out / STAMP).stat().st_mtime_ns
    handler, logger = _Lines(), logging.getLogger(partition_dataset.__module__)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        partition_dataset(cfg, 2, out)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = handler.lines
    assert lines[0].startswith("reusing") and (out / STAMP).stat().st_mtime_ns == before
    partition_dataset(cfg, 2, out, force=True)
    assert (out / STAMP).stat().st_mtime_ns != before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        partition_dataset(cfg, 2, tmp_path / "other")
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"


def test_link_split_keeps_ids_and_reverse_edges(link_root, tmp_path):
    cfg = _job(link_root, "links", task="link_prediction")
    stamp = partition_dataset(cfg, 2, tmp_path / "links")
    data = load_link_data(cfg.data)
    saved = torch.load(tmp_path / "links" / LINK_SPLIT, weights_only=True)
    meta = json.loads((tmp_path / "links" / "links.json").read_text())
    assert meta["num_edges"] == data.graph.num_edges()
    # rebuild the partitioned graph's edges from the parts and check the reverse of every edge
    src, dst, eid = [], [], []
    for i in range(2):
        g, *_ = dgl.distributed.load_partition(stamp["part_config"], i)
        inner = g.edata["inner_edge"].bool()
        s, d = g.edges()
        src.append(g.ndata[dgl.NID][s[inner]])
        dst.append(g.ndata[dgl.NID][d[inner]])
        eid.append(g.edata[dgl.EID][inner])
    src, dst, eid = torch.cat(src), torch.cat(dst), torch.cat(eid)
    order = torch.argsort(eid)
    src, dst = src[order], dst[order]
    rev = saved["reverse_eids"]
    assert torch.equal(src[rev], dst) and torch.equal(dst[rev], src)
    # the training edges of the split are edges of the partitioned graph, in the new ids
    train = saved["split"]["train"]["edge"]
    keys = set(zip(src.tolist(), dst.tolist()))
    assert all(pair in keys for pair in map(tuple, train[:200].tolist()))
