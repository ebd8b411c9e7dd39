"""The files ``largegraph partition`` writes beside DGL's partitions, and the check that they fit a job.

Torch-free on purpose: a distdgl launcher refuses partitions that do not fit the job before it
starts any process, without holding torch or DGL beside the servers and trainers it starts.
"""
from __future__ import annotations

import json
from pathlib import Path

from largegraph.config import GRAPH_FREE_ARCHS, JobConfig
from largegraph.core.errors import ConfigError

STAMP = "largegraph-partition.json"
LINK_SPLIT = "link_split.pt"
NODE_IDS = "orig_node_ids.pt"
DEFAULT_NTYPE = "_N"  # DGL's name of an untyped graph's one node type
MASKS = {"train": "train_mask", "valid": "val_mask", "test": "test_mask"}


def partition_stamp(part_config: str) -> dict:
    """What ``largegraph partition`` recorded beside the part config (dataset, task, figures)."""
    path = Path(part_config).parent / STAMP
    try:
        stamp = json.loads(path.read_text())
    except (OSError, ValueError):
        raise ConfigError(f"{path} is missing or unreadable: distdgl trains on partitions written by "
                          f"`largegraph partition` (run it, or with --force to redo them)") from None
    if "dataset" not in stamp:
        raise ConfigError(f"the partitions in {path.parent} predate distdgl training; redo them with "
                          f"`largegraph partition ... --force`")
    return stamp


def check_partitions(cfg: JobConfig) -> dict:
    """The partitions' stamp, once they are known to fit the job (task, dataset); else ConfigError."""
    stamp = partition_stamp(cfg.distributed.part_config)
    if stamp.get("task") != cfg.task:
        raise ConfigError(f"the partitions in {Path(cfg.distributed.part_config).parent} were made for "
                          f"{stamp.get('task')}, not {cfg.task}; partition the dataset for this task")
    if cfg.model.arch in GRAPH_FREE_ARCHS:
        raise ConfigError(f"model.arch {cfg.model.arch} passes no messages: it needs no graph servers; "
                          f"train it in local mode")
    meta = stamp["dataset"]
    if meta["name"] != cfg.data.name:
        raise ConfigError(f"the partitions in {Path(cfg.distributed.part_config).parent} are of dataset "
                          f"{meta['name']}, but data.name is {cfg.data.name}")
    return stamp
