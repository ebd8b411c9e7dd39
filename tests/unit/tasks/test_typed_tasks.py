"""Typed node and link tasks through the shared task code, and the seam that picks them."""
from __future__ import annotations

import pytest
import torch
from typed_graphs import mag_toy_data, mag_toy_links

from largegraph.backends.local import LocalBackend
from largegraph.config import build_config
from largegraph.core.errors import ConfigError
from largegraph.data.graph import GraphData
from largegraph.tasks.typed_link import TypedLinkPredictionTask
from largegraph.tasks.typed_node import TypedNodeClassificationTask, TypedNodeClassifier
from largegraph.training.assembly import build_components
from largegraph.training.typed import check_fits, fit_dataset

CPU = torch.device("cpu")


def job(**sections):
    base = {"data": {"name": "mag-toy"}, "model": {"hidden": 16}, "sampler": {"fanouts": [5, 5], "batch_size": 50},
            "train": {"validation": "sampled"}}
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return build_config(base)


def train(model, loader, task, epochs: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for epoch in range(epochs):
        for batch in loader.epoch(epoch):
            loss, _ = task.loss(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return float(loss)


@pytest.mark.parametrize("arch", ["rgcn", "rgat", "hsage"])
def test_typed_node_classification_learns_and_scores_the_target_type(arch):
    torch.manual_seed(0)
    cfg = job(model={"arch": arch, "heads": 2, "num_bases": 2 if arch == "rgcn" else 0})
    data = mag_toy_data()
    model, loader, task = build_components(cfg, LocalBackend(), fit_dataset(cfg, data), CPU)
    assert isinstance(model, TypedNodeClassifier) and isinstance(task, TypedNodeClassificationTask)
    train(model, loader, task, epochs=5)
    result = task.evaluate(model, CPU)
    assert result["train_acc"] > 0.6, result["train_acc"]  # four balanced classes: chance is 0.25
    assert result["pred"].shape == (300,) and set(result["emb"]) == {"paper", "author", "field"}
    assert 0 <= task.selection_scores(model, CPU)["valid_acc"] <= 1
    out = task.predictions(result)
    assert torch.equal(out["label"], data.graph.nodes["paper"].data["label"]) and out["prob"].shape == (300, 4)


def test_mlp_on_a_typed_dataset_trains_on_the_target_types_features_alone():
    data = mag_toy_data()
    view = fit_dataset(job(model={"arch": "mlp"}), data)
    assert isinstance(view, GraphData) and view.num_nodes == 300 and view.graph.num_edges() == 0
    assert view.graph.ndata["feat"].data_ptr() == data.graph.nodes["paper"].data["feat"].data_ptr()


@pytest.mark.parametrize("sections, message", [
    ({"model": {"arch": "sage"}}, "model.arch sage takes one node type"),
    ({"model": {"arch": "gat"}}, "use model.arch rgcn, rgat, hsage"),
    ({"model": {"arch": "mlp"}, "sampler": {"relation_fanouts": {"cites": [2, 2]}}}, "passes no messages"),
])
def test_untyped_settings_on_a_typed_dataset_are_one_line_errors(sections, message):
    with pytest.raises(ConfigError, match=message) as err:
        fit_dataset(job(**sections), mag_toy_data())
    assert "\n" not in str(err.value)


def test_typed_settings_on_an_untyped_dataset_are_one_line_errors():
    import dgl

    plain = GraphData("plain", dgl.graph(([0], [1])), 2, {})
    with pytest.raises(ConfigError, match="model.arch rgcn is for typed graphs"):
        check_fits(job(model={"arch": "rgcn"}), plain)
    with pytest.raises(ConfigError, match="relation_fanouts is for typed graphs"):
        check_fits(job(model={"arch": "sage"}, sampler={"relation_fanouts": {"r": [1, 1]}}), plain)
    with pytest.raises(ConfigError, match="mlp on the target"):
        check_fits(job(model={"arch": "sage"}), mag_toy_data())
    with pytest.raises(ConfigError, match="rgcn, rgat, hsage$"):
        check_fits(job(task="link_prediction", model={"arch": "mlp"}, train={"validation": "auto"}), mag_toy_links())


def test_typed_link_prediction_trains_and_ranks_held_out_pairs_against_fixed_negatives():
    torch.manual_seed(0)
    cfg = job(task="link_prediction", model={"arch": "rgcn"}, train={"validation": "auto"}, link={"num_negatives": 2})
    data = mag_toy_links()
    model, loader, task = build_components(cfg, LocalBackend(), data, CPU)
    assert isinstance(task, TypedLinkPredictionTask)
    train(model, loader, task, epochs=2)
    first = task.evaluate(model, CPU)
    assert first["train_mrr"] is None and 0 < first["valid_mrr"] <= 1 and 0 < first["test_mrr"] <= 1
    assert task.eval_split["valid"]["target_node_neg"].shape == (20, 100)
    assert task.evaluate(model, CPU)["valid_mrr"] == first["valid_mrr"]  # fixed negatives, eval mode
    assert first["emb"]["author"].shape == (200, 16) and first["emb"]["paper"].shape == (300, 16)
