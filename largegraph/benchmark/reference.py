"""The reference `largegraph bench` measures against: DGL's mini-batch loops as its documentation
teaches them, and nothing of largegraph.

Run as ``python -m largegraph.benchmark.reference node|link --root R --name N ... --out result.json`` in
a plain subprocess, with the environment it was given (no allocator settings, DGL's defaults). It
follows DGL's GraphSAGE examples (``examples/pytorch/graphsage/node_classification.py`` and
``link_pred.py``) and the user guide's chapter 6 (stochastic training on large graphs):

* the dataset through OGB's ``DglNodePropPredDataset`` / ``DglLinkPropPredDataset``, reverse edges
  added with ``dgl.add_reverse_edges`` (OGB stores these synthetic graphs one way);
* ``NeighborSampler(fanouts, prefetch_node_feats=["feat"], prefetch_labels=["label"])`` and
  ``dgl.dataloading.DataLoader(shuffle=True)``; for links ``as_edge_prediction_sampler`` with the
  reverse edges of a batch excluded and ``negative_sampler.Uniform(1)``;
* ``SAGEConv(..., "mean")`` layers, ReLU and dropout between them; Adam;
* node: sampled validation accuracy after every epoch (the example's ``evaluate``), layer-wise
  full-neighbour inference for the test accuracy at the end (its ``layerwise_infer``);
  link: dot-product scores, BCE, and test Hits@K from layer-wise embeddings at the end.

It writes one JSON object: per-epoch training seconds, validation seconds, seeds per epoch, input
nodes and sampled edges per batch, and the final test score. The importing of this module imports
nothing of largegraph, so nothing of largegraph's start-up applies to it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable

import dgl
import dgl.nn as dglnn
import torch
import torch.nn.functional as F
from torch import nn

from largegraph.core.argtypes import add_valued_options


class SAGE(nn.Module):
    """DGL's example model: ``num_layers`` mean SAGEConv layers, the last one to ``out_size``."""

    def __init__(self, in_size: int, hid_size: int, out_size: int, num_layers: int, dropout: float):
        super().__init__()
        sizes = [in_size] + [hid_size] * (num_layers - 1) + [out_size]
        self.layers = nn.ModuleList(dglnn.SAGEConv(a, b, "mean") for a, b in zip(sizes[:-1], sizes[1:]))
        self.dropout = nn.Dropout(dropout)
        self.hid_size, self.out_size = hid_size, out_size

    def forward(self, blocks, x):
        h = x
        for i, (layer, block) in enumerate(zip(self.layers, blocks)):
            h = layer(block, h)
            if i != len(self.layers) - 1:
                h = self.dropout(F.relu(h))
        return h

    @torch.no_grad()
    def inference(self, g, batch_size: int):
        """Layer-wise inference over all nodes, as in DGL's example."""
        feat = g.ndata["feat"]
        sampler = dgl.dataloading.MultiLayerFullNeighborSampler(1, prefetch_node_feats=["feat"])
        loader = dgl.dataloading.DataLoader(g, torch.arange(g.num_nodes()), sampler, batch_size=batch_size,
                                            shuffle=False, drop_last=False)
        for i, layer in enumerate(self.layers):
            y = torch.empty(g.num_nodes(), self.hid_size if i != len(self.layers) - 1 else self.out_size)
            for _input_nodes, output_nodes, blocks in loader:
                h = layer(blocks[0], blocks[0].srcdata["feat"])
                if i != len(self.layers) - 1:
                    h = F.relu(h)
                y[output_nodes] = h
            g.ndata["feat"] = y
        g.ndata["feat"] = feat
        return y


def ogb_meta(root: str, name: str) -> dict:
    # OGB reads a dataset that is not in its master list from a meta_dict; the writer of the
    # synthetic graph stored that dict in largegraph.json beside it.
    from pathlib import Path

    directory = Path(root) / name.replace("-", "_")
    meta = json.loads((directory / "largegraph.json").read_text())["ogb_meta"]
    return dict(meta, dir_path=str(directory))


def train_epoch(model, opt, loader, batch_loss) -> tuple[dict, float]:
    """One epoch of the documented loop; ``batch_loss(*batch)`` is a batch's loss. Returns the epoch's
    counts (input nodes, sampled edges, batches) and its seconds."""
    stats = {"input_nodes": 0, "sampled_edges": 0, "batches": 0}
    start = time.perf_counter()
    model.train()
    for batch in loader:  # (input_nodes, ..., blocks) for node and edge loaders alike
        loss = batch_loss(*batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        # a typed loader's input nodes are a dict of ids per node type
        stats["input_nodes"] += sum(map(len, batch[0].values())) if isinstance(batch[0], dict) else len(batch[0])
        stats["sampled_edges"] += sum(b.num_edges() for b in batch[-1])
        stats["batches"] += 1
    return stats, time.perf_counter() - start


def accuracy(model: nn.Module, batches, logits, labels) -> float:
    """Share of the batches' output nodes (in eval mode) whose most likely class, of ``logits(*batch)``,
    is ``labels(*batch)``."""
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in batches:
            pred = logits(*batch).argmax(1)
            correct += int((pred == labels(*batch)).sum())
            total += len(pred)
    return correct / max(total, 1)


def run_node(args: argparse.Namespace) -> dict:
    from ogb.nodeproppred import DglNodePropPredDataset

    dataset = DglNodePropPredDataset(args.name, meta_dict=ogb_meta(args.root, args.name))
    g, labels = dataset[0]
    split = dataset.get_idx_split()
    g = dgl.add_reverse_edges(g, copy_ndata=True)
    g.ndata["label"] = labels.view(-1).long()
    g.ndata["feat"] = g.ndata["feat"].float()
    num_classes = int(labels.max()) + 1
    model = SAGE(g.ndata["feat"].shape[1], args.hidden, num_classes, args.layers, args.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sampler = dgl.dataloading.NeighborSampler(args.fanouts, prefetch_node_feats=["feat"], prefetch_labels=["label"])
    train_loader = dgl.dataloading.DataLoader(g, split["train"], sampler, batch_size=args.batch_size, shuffle=True,
                                              drop_last=False, num_workers=args.workers)
    val_loader = dgl.dataloading.DataLoader(g, split["valid"], sampler, batch_size=args.batch_size, shuffle=True,
                                            drop_last=False, num_workers=args.workers)
    out = {"epochs": [], "edges": g.num_edges(), "nodes": g.num_nodes()}
    def batch_loss(_input_nodes, _output_nodes, blocks):
        return F.cross_entropy(model(blocks, blocks[0].srcdata["feat"]), blocks[-1].dstdata["label"])

    for _epoch in range(args.epochs):
        stats, train_s = train_epoch(model, opt, train_loader, batch_loss)
        start = time.perf_counter()
        valid_acc = accuracy(model, val_loader, lambda _i, _o, blocks: model(blocks, blocks[0].srcdata["feat"]),
                             lambda _i, _o, blocks: blocks[-1].dstdata["label"])
        out["epochs"].append({"train_s": train_s, "valid_s": time.perf_counter() - start,
                              "seeds": len(split["train"]), "valid_acc": valid_acc, **stats})
    model.eval()
    pred = model.inference(g, args.eval_batch_size).argmax(1)
    test = split["test"]
    out["test_score"] = float((pred[test] == g.ndata["label"][test]).float().mean())
    out["metric"] = "acc"
    return out


def hits_at_k(pos: torch.Tensor, neg: torch.Tensor, k: int) -> float:
    """OGB's Hits@K: the share of positive pairs scored above the K-th best negative pair."""
    kth = torch.topk(neg, min(k, len(neg))).values[-1]
    return float((pos > kth).float().mean())


def run_link(args: argparse.Namespace) -> dict:
    from ogb.linkproppred import DglLinkPropPredDataset

    meta = ogb_meta(args.root, args.name)
    dataset = DglLinkPropPredDataset(args.name, meta_dict=meta)
    g = dataset[0]
    split = dataset.get_edge_split()
    # the training edges, one way, and their reverses interleaved (edge 2i+1 reverses 2i) so that a
    # batch can exclude both
    src, dst = split["train"]["edge"].t()
    n_train = len(src)
    feat = g.ndata["feat"].float()
    g = dgl.graph((torch.stack([src, dst], 1).view(-1), torch.stack([dst, src], 1).view(-1)), num_nodes=g.num_nodes())
    g.ndata["feat"] = feat
    reverse_eids = torch.arange(g.num_edges()) ^ 1
    train_eids = torch.arange(0, g.num_edges(), 2)
    model = SAGE(feat.shape[1], args.hidden, args.hidden, args.layers, args.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sampler = dgl.dataloading.NeighborSampler(args.fanouts, prefetch_node_feats=["feat"])
    sampler = dgl.dataloading.as_edge_prediction_sampler(
        sampler, exclude="reverse_id", reverse_eids=reverse_eids,
        negative_sampler=dgl.dataloading.negative_sampler.Uniform(1))
    loader = dgl.dataloading.DataLoader(g, train_eids, sampler, batch_size=args.batch_size, shuffle=True,
                                        drop_last=False, num_workers=args.workers)
    out = {"epochs": [], "edges": g.num_edges(), "nodes": g.num_nodes(), "train_edges": n_train}
    def batch_loss(_input_nodes, pair_graph, neg_graph, blocks):
        h = model(blocks, blocks[0].srcdata["feat"])
        pos = dgl.ops.u_dot_v(pair_graph, h, h).view(-1)
        neg = dgl.ops.u_dot_v(neg_graph, h, h).view(-1)
        label = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
        return F.binary_cross_entropy_with_logits(torch.cat([pos, neg]), label)

    for _epoch in range(args.epochs):
        stats, train_s = train_epoch(model, opt, loader, batch_loss)
        out["epochs"].append({"train_s": train_s, "valid_s": 0.0, "seeds": len(train_eids), **stats})
    model.eval()
    emb = model.inference(g, args.eval_batch_size)
    test = split["test"]

    def score(pairs: torch.Tensor) -> torch.Tensor:
        return (emb[pairs[:, 0]] * emb[pairs[:, 1]]).sum(1)

    metric = meta["eval metric"]
    k = int(metric.split("@")[1]) if metric.startswith("hits@") else 50
    out["test_score"] = hits_at_k(score(test["edge"]), score(test["edge_neg"]), k)
    out["metric"] = metric
    return out


Runner = Callable[[argparse.Namespace], dict]


def parse_args(argv: list[str] | None, tasks: list[str], description: str) -> argparse.Namespace:
    """The loop's settings, as ``largegraph bench`` passes them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("task", choices=tasks)
    parser.add_argument("--root", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", required=True)
    add_valued_options(parser, (
        ("--epochs", int, 10), ("--fanouts", str, "10,10,10"), ("--batch-size", int, 1024),
        ("--eval-batch-size", int, 8192), ("--hidden", int, 256), ("--layers", int, 3), ("--dropout", float, 0.5),
        ("--lr", float, 1e-3), ("--weight-decay", float, 5e-4), ("--workers", int, 0), ("--seed", int, 0)))
    args = parser.parse_args(argv)
    args.fanouts = [int(f) for f in args.fanouts.split(",")]
    return args


def run_main(argv: list[str] | None, runners: dict[str, Runner], description: str) -> int:
    """Parse ``argv``, seed torch and DGL, run the task's loop and write its JSON to ``--out``."""
    args = parse_args(argv, list(runners), description)
    torch.manual_seed(args.seed)
    dgl.seed(args.seed)
    result = runners[args.task](args)
    with open(args.out, "w") as handle:
        json.dump(result, handle)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(argv, {"node": run_node, "link": run_link}, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
