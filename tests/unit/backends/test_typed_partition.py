"""``largegraph partition`` of a typed graph: node types and relations kept, features per type and
the target's labels and split travel with the partitions, ids map back per type; typed link
prediction is refused in one line."""
from __future__ import annotations

import json

import dgl
import pytest
import torch

from largegraph.backends.distdgl.partition import NODE_IDS, partition_dataset
from largegraph.config import JobConfig
from largegraph.core.errors import ConfigError
from largegraph.data import load_dataset


def _job(root, task="node_classification", **data) -> JobConfig:
    return JobConfig(name="p", task=task, data={"name": "mag-tiny", "root": str(root), **data},
                     model={"arch": "rgcn", "hidden": 8, "num_layers": 2}, sampler={"fanouts": [5, 5]})


def test_typed_partitions_keep_types_and_map_back_per_type(mag_root, tmp_path):
    cfg = _job(mag_root)
    stamp = partition_dataset(cfg, 2, tmp_path / "magt", "metis")
    data = load_dataset(cfg.data)
    g = data.graph
    assert stamp["dataset"]["target"] == "paper" and stamp["num_nodes"] == g.num_nodes()
    assert stamp["num_edges"] == g.num_edges() and 0 < stamp["edge_cut"] < g.num_edges()
    for part in ("train", "valid", "test"):
        assert sum(p[part] for p in stamp["parts"]) == len(data.split[part])
    orig = torch.load(tmp_path / "magt" / NODE_IDS)
    assert set(orig) == set(g.ntypes)
    for t, ids in orig.items():
        assert torch.equal(torch.sort(ids).values, torch.arange(g.num_nodes(t)))
    # partition 0's own papers carry their features, labels and split masks
    _, node_feats, _, book, _, ntypes, etypes = dgl.distributed.load_partition(str(tmp_path / "magt" / "magt.json"), 0)
    assert sorted(ntypes) == sorted(g.ntypes) and len(etypes) == len(g.canonical_etypes)
    own = book.partid2nids(0, "paper")
    mine = orig["paper"][own]
    assert torch.equal(node_feats["paper/feat"], g.nodes["paper"].data["feat"][mine].float())
    assert torch.equal(node_feats["paper/label"], g.nodes["paper"].data["label"][mine])
    train = torch.zeros(data.num_nodes, dtype=torch.bool)
    train[data.split["train"]] = True
    assert torch.equal(node_feats["paper/train_mask"], train[mine])
    assert json.loads((tmp_path / "magt" / "largegraph-partition.json").read_text())["key"]["parts"] == 2


def test_typed_link_prediction_is_refused_in_one_line(mag_root, tmp_path):
    cfg = _job(mag_root, task="link_prediction", relation="writes")
    with pytest.raises(ConfigError, match="node classification only"):
        partition_dataset(cfg, 2, tmp_path / "links", "metis")
