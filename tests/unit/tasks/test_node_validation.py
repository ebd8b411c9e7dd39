"""Model selection by sampled validation (train.validation) against exact layer-wise evaluation."""
from __future__ import annotations

import pytest
import torch

from largegraph.config import DataConfig, build_config
from largegraph.data import load_dataset
from largegraph.core.errors import ConfigError
from largegraph.backends.local import valid_loader
from largegraph.training.assembly import build_model
from largegraph.tasks.node_classification import NodeClassificationTask


def _job(root, **train) -> dict:
    return {"data": {"name": "tiny", "root": str(root)}, "sampler": {"fanouts": [-1, -1], "batch_size": 256},
            "model": {"hidden": 16, "num_layers": 2}, "train": train}


def _task(cfg, data, model) -> NodeClassificationTask:
    loader = valid_loader(cfg, data, model, torch.device("cpu"), None)
    return NodeClassificationTask(data, eval_batch_size=512, valid_loader=loader)


def _built(raw: dict):
    """(cfg, data, model, task) of job ``raw``, the model's weights drawn from seed 0."""
    cfg = build_config(raw)
    data = load_dataset(cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg, data)
    return cfg, data, model, _task(cfg, data, model)


def test_with_every_neighbour_it_scores_what_exact_evaluation_scores(synth_root):
    cfg, data, model, task = _built(_job(synth_root))
    sampled = task.selection_scores(model, torch.device("cpu"))
    exact = task.evaluate(model, torch.device("cpu"))
    assert set(sampled) == {"valid_acc"}
    # the same predictions up to float summation order in the mean aggregation: at most one node apart
    assert sampled["valid_acc"] == pytest.approx(exact["valid_acc"], abs=1.01 / len(data.split["valid"]))
    assert task.selection_scores(model, torch.device("cpu")) == sampled  # a fixed seed: the same batches each time


def test_sampled_scores_are_repeatable_and_follow_the_weights(synth_root):
    raw = _job(synth_root)
    raw["sampler"]["fanouts"] = [3, 3]
    cfg, data, model, task = _built(raw)
    first = task.selection_scores(model, torch.device("cpu"))["valid_acc"]
    assert task.selection_scores(model, torch.device("cpu"))["valid_acc"] == first
    # a model that always predicts one class scores that class's share of the validation nodes
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.arange(data.num_classes, dtype=torch.float32))
    labels = data.graph.ndata["label"][data.split["valid"]]
    share = float((labels == data.num_classes - 1).float().mean())
    assert task.selection_scores(model, torch.device("cpu"))["valid_acc"] == pytest.approx(share)


def test_which_path_each_setting_takes(synth_root):
    data = load_dataset(DataConfig(name="tiny", root=str(synth_root)))
    for setting, sampled in (("auto", True), ("sampled", True), ("exact", False)):
        cfg = build_config(_job(synth_root, validation=setting))
        model = build_model(cfg, data)
        assert (valid_loader(cfg, data, model, torch.device("cpu"), None) is not None) is sampled
    with pytest.raises(ConfigError, match="train.validation: sampled is for node_classification"):
        build_config({**_job(synth_root, validation="sampled"), "task": "link_prediction"})
