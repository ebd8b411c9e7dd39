"""Link prediction in-process: leak-free edge batches, negatives, losses, the scorer, evaluation mode."""

from __future__ import annotations

from pathlib import Path

import dgl
import pytest
import torch
from torch import nn

from largegraph.config import build_config
from largegraph.data.link import load_link_dataset
from largegraph.data.synthetic import SynthLinkParams, write_synthetic_link_dataset
from largegraph.core.errors import ConfigError
from largegraph.tasks.link_prediction import link_loss
from largegraph.backends.local import LocalBackend
from largegraph.training.assembly import build_components


def job(root: Path, name: str, **sections) -> dict:
    cfg = {"name": "link", "task": "link_prediction", "data": {"name": name, "root": str(root)},
           "sampler": {"fanouts": [5, 5], "batch_size": 512}, "model": {"hidden": 32},
           "train": {"epochs": 1}}
    cfg.update(sections)
    return cfg


class Built:
    """The model, loader and task a run of ``cfg`` would train (as ``largegraph train`` assembles them)."""

    def __init__(self, cfg, data):
        self.model, self.loader, self.task = build_components(cfg, LocalBackend(), data, torch.device("cpu"))

    def evaluate(self, model, device):
        return self.task.evaluate(model, device)


def pairs(src: torch.Tensor, dst: torch.Tensor, n: int) -> set[int]:
    return set((src * n + dst).tolist())


SAMPLED = {"fanouts": [5, 5], "batch_size": 512}


FULL_GRAPH = {"fanouts": [-1, -1], "batch_size": 512, "full_graph": True}


@pytest.mark.parametrize("sampler", [SAMPLED, FULL_GRAPH], ids=["sampled", "full_graph"])
def test_batches_never_see_their_own_edges_nor_heldout_edges(link_root, sampler):
    data = load_link_dataset("collab-like", link_root)
    task = Built(build_config(job(link_root, "collab-like", sampler=sampler)), data)
    g, n = data.graph, data.num_nodes
    heldout = set()
    for part in ("valid", "test"):
        e = data.split[part]["edge"]
        heldout |= pairs(e[:, 0], e[:, 1], n) | pairs(e[:, 1], e[:, 0], n)
    batches = 0
    for batch in task.loader.epoch(0):
        seeds = batch.pair_graph.edata[dgl.EID]
        forbidden = set(seeds.tolist()) | set((seeds ^ 1).tolist())
        s, d = g.find_edges(seeds)
        assert torch.equal(s, g.find_edges(seeds ^ 1)[1]) and torch.equal(d, g.find_edges(seeds ^ 1)[0])
        for block in batch.blocks:
            eids = block.edata[dgl.EID]
            assert not forbidden & set(eids.tolist())
            bs, bd = g.find_edges(eids)
            assert not heldout & pairs(bs, bd, n)
        batches += 1
    assert batches == task.loader.num_batches() > 1


def test_full_graph_steps_score_like_full_neighbour_blocks(link_root):
    # Same seeds, same exclusions, same negatives: only how the neighbourhood is built differs.
    data = load_link_dataset("collab-like", link_root)
    link = {"predictor": "mlp", "negative_sampler": "global_uniform"}
    tasks = [Built(build_config(job(link_root, "collab-like", link=link,
                                                 sampler=dict(FULL_GRAPH, full_graph=full))), data)
             for full in (False, True)]
    torch.manual_seed(0)
    model = tasks[0].model.eval()
    scored = []
    for task in tasks:
        batch = next(iter(task.loader.epoch(2)))
        with torch.no_grad():
            pos, neg = model(batch.blocks, batch.input_nodes, batch.x,
                             batch.pair_graph.edges(), batch.neg_graph.edges())
        ids = batch.neg_graph.ndata[dgl.NID]
        scored.append((batch.seed_ids, ids[batch.neg_graph.edges()[0]], ids[batch.neg_graph.edges()[1]], pos, neg))
    (seeds_a, ns_a, nd_a, pos_a, neg_a), (seeds_b, ns_b, nd_b, pos_b, neg_b) = scored
    assert torch.equal(seeds_a, seeds_b) and torch.equal(ns_a, ns_b) and torch.equal(nd_a, nd_b)
    assert torch.allclose(pos_a, pos_b, atol=1e-5) and torch.allclose(neg_a, neg_b, atol=1e-5)


@pytest.mark.parametrize("sampler", [SAMPLED, FULL_GRAPH], ids=["sampled", "full_graph"])
def test_seed_edges_are_visible_only_when_exclusion_is_off(link_root, sampler):
    data = load_link_dataset("collab-like", link_root)
    cfg = build_config(job(link_root, "collab-like", sampler=dict(sampler, fanouts=[-1, -1]),
                           link={"exclude_seed_edges": False}))
    batch = next(iter(Built(cfg, data).loader.epoch(0)))
    # all neighbours, nothing excluded: the last block holds every in-edge of the batch's endpoints,
    # the seed edges and their reverses among them; the graph itself has no held-out edge
    block = batch.blocks[-1]
    # the full-graph step passes the training graph itself, whose edge ids are its own
    seen = set((block.edata[dgl.EID] if dgl.EID in block.edata else block.edges(form="eid")).tolist())
    seeds = batch.seed_ids
    assert set(seeds.tolist()) <= seen and set((seeds ^ 1).tolist()) <= seen


def test_full_graph_is_for_link_prediction_with_all_neighbours(tmp_path, link_root):
    with pytest.raises(ConfigError, match="fanouts to -1"):
        build_config(job(link_root, "collab-like", sampler=dict(FULL_GRAPH, fanouts=[5, 5])))
    with pytest.raises(ConfigError, match="for link_prediction"):
        build_config(dict(job(link_root, "collab-like", sampler=FULL_GRAPH), task="node_classification"))


def test_negatives_are_repeatable_per_batch(link_root):
    data = load_link_dataset("collab-like", link_root)
    task = Built(build_config(job(link_root, "collab-like")), data)
    first = [b.neg_graph.edges()[1] for b in task.loader.epoch(3)]
    again = [b.neg_graph.edges()[1] for b in task.loader.epoch(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))


@pytest.mark.parametrize("sampler", ["global_uniform", "uniform"])
def test_true_negatives_are_never_training_edges(tmp_path, sampler):
    # dense like ogbl-ddi, where raw uniform draws often land on training edges
    params = SynthLinkParams(num_nodes=300, avg_degree=60, num_communities=3, feat_dim=4, seed=5)
    write_synthetic_link_dataset(tmp_path, "dense", params)
    data = load_link_dataset("dense", tmp_path)
    g = data.graph
    edges_hit = {}
    for true_negatives in (False, True):
        cfg = build_config(job(tmp_path, "dense", link={"negative_sampler": sampler, "num_negatives": 3,
                                                        "true_negatives": true_negatives}))
        hits = self_pairs = 0
        for batch in Built(cfg, data).loader.epoch(0):
            ids = batch.neg_graph.ndata[dgl.NID]
            src, dst = (ids[e] for e in batch.neg_graph.edges())
            hits += int(g.has_edges_between(src, dst).sum())
            self_pairs += int((src == dst).sum())
            if sampler == "uniform":  # per-source negatives keep their positive's source
                pos_src = ids[batch.pair_graph.edges()[0]]
                assert torch.equal(src, pos_src.repeat_interleave(3))
        edges_hit[true_negatives] = hits + self_pairs
    assert edges_hit[False] > 0 and edges_hit[True] == 0, edges_hit


def test_link_losses_follow_their_definitions():
    pos = torch.tensor([2.0, 0.5])
    neg = torch.tensor([1.5, -1.0, 0.0, 3.0])  # positive i's negatives at [2i, 2i+2)
    gaps = torch.tensor([0.5, 3.0, 0.5, -2.5])
    assert torch.isclose(link_loss("margin", pos, neg, 2), torch.relu(1 - gaps).mean())
    # auc also pulls gaps larger than the margin back towards it (the 3.0 term), unlike the hinge
    assert torch.isclose(link_loss("auc", pos, neg, 2, margin=1.0), ((1 - gaps) ** 2).mean())
    expected = -(torch.log(torch.sigmoid(pos)).sum() + torch.log(1 - torch.sigmoid(neg)).sum()) / 6
    assert torch.isclose(link_loss("bce", pos, neg, 2), expected)
    with pytest.raises(ValueError):
        link_loss("hinge", pos, neg, 2)


def test_mlp_scorer_has_the_configured_depth_and_dropout(link_root):
    cfg = build_config(job(link_root, "collab-like", link={"predictor": "mlp", "predictor_layers": 3,
                                                           "predictor_dropout": 0.4}))
    model = Built(cfg, load_link_dataset("collab-like", link_root)).model
    layers = list(model.scorer.net)
    assert [type(m) for m in layers if isinstance(m, (nn.Linear, nn.Dropout))] == [
        nn.Linear, nn.Dropout, nn.Linear, nn.Dropout, nn.Linear]
    assert all(m.p == 0.4 for m in layers if isinstance(m, nn.Dropout))
    assert layers[-1].out_features == 1
    cfg.link.predictor_input_dropout = 0.3
    model = Built(cfg, load_link_dataset("collab-like", link_root)).model
    dropouts = [m.p for m in model.scorer.net if isinstance(m, nn.Dropout)]
    assert isinstance(model.scorer.net[0], nn.Dropout) and dropouts == [0.3, 0.4, 0.4]


def test_evaluation_turns_the_scorers_dropout_off(link_root):
    cfg = build_config(job(link_root, "collab-like", link={"predictor": "mlp", "predictor_dropout": 0.5}))
    task = Built(cfg, load_link_dataset("collab-like", link_root))
    model = task.model
    model.train()
    first, second = (task.evaluate(model, torch.device("cpu")) for _ in range(2))
    assert first["valid_hits@50"] == second["valid_hits@50"] and first["test_hits@50"] == second["test_hits@50"]
    assert model.training  # evaluation leaves the model as it found it

