"""Tasks: a head, a loss and an evaluation on top of any encoder; one `task:` key picks one."""
from __future__ import annotations

from largegraph.config import JobConfig
from largegraph.data.graph import GraphData
from largegraph.tasks.node_classification import NodeClassificationTask


def build_task(cfg: JobConfig, data: GraphData):
    """The task object the shared trainer drives, chosen by ``cfg.task``."""
    if cfg.task == "node_classification":
        return NodeClassificationTask(cfg, data)
    raise AssertionError(f"config validation let through unknown task {cfg.task!r}")
