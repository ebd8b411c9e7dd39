"""The names of what ``largegraph partition`` writes beside DGL's partitions, owned here once.

The partitioner writes them (:mod:`~largegraph.backends.distdgl.partition`) and a trainer reads them
(:mod:`~largegraph.backends.distdgl.data`); neither imports the other for a file name.
"""
from __future__ import annotations

STAMP = "largegraph-partition.json"  # what was partitioned (input key, parts, method) and the figures
LINK_SPLIT = "link_split.pt"  # the edge split and reverse edge ids, in partitioned ids
NODE_IDS = "orig_node_ids.pt"  # the prepared graph's id of every partitioned node id
# the split as node data of the partitions: split name -> mask name
MASKS = {"train": "train_mask", "valid": "val_mask", "test": "test_mask"}
