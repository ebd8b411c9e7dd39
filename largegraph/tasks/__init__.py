"""Tasks: a head, a loss and an evaluation on top of any encoder; one `task:` key picks one."""
from __future__ import annotations

from largegraph.config import JobConfig
from largegraph.tasks.node_classification import NodeClassificationTask


def load_task_data(cfg: JobConfig):
    """The dataset shape ``cfg.task`` needs: GraphData for nodes, LinkData for links."""
    if cfg.task == "link_prediction":
        from largegraph.data.link import load_link_dataset

        data = load_link_dataset(cfg.data.name, cfg.data.root)
        if cfg.data.feature_norm != "none" and "feat" in data.graph.ndata:
            from largegraph.data import normalize_features

            normalize_features(data.graph.ndata["feat"], cfg.data.feature_norm)
        return data
    from largegraph.data import load_dataset

    return load_dataset(cfg.data)


def build_task(cfg: JobConfig, data):
    """The task object the shared trainer drives, chosen by ``cfg.task``."""
    if cfg.task == "node_classification":
        return NodeClassificationTask(cfg, data)
    if cfg.task == "link_prediction":
        from largegraph.tasks.link_prediction import LinkPredictionTask

        return LinkPredictionTask(cfg, data)
    raise AssertionError(f"config validation let through unknown task {cfg.task!r}")
