"""The typed reference `largegraph bench typed` measures against: DGL's documented mini-batch RGCN loop
on a heterogeneous graph, and nothing of largegraph's training stack.

Run as ``python -m largegraph.benchmark.reference_typed typed --root R --name N ... --out result.json`` in a
plain subprocess. It follows DGL's ogbn-mag RGCN example (``examples/pytorch/ogb/ogbn-mag/hetero_rgcn.py``)
and the user guide's "Stochastic training of GNN for node classification on heterogeneous graphs":

* the dataset through OGB's ``DglNodePropPredDataset`` (its heterogeneous branch), reverse relations
  added with ``dgl.AddReverse`` as ``rev_<relation>``. Unlike the example's default, a relation between
  one type (paper cites paper) gets its own ``rev_cites`` too instead of its reverses merged into it
  (``sym_new_etype=True``), because that is the graph largegraph trains on: the same relations and so
  the same weights on both sides. The example's ``ToSimple`` is left out: the synthetic graph holds no
  duplicate edges;
* a learnable ``dgl.nn.HeteroEmbedding`` table for every featureless node type, as wide as the
  target type's features, trained with the model by the same Adam;
* per layer, ``HeteroGraphConv`` over one ``GraphConv(norm="right")`` per relation (the mean of the
  neighbours' messages) with a weight per relation, summed over relations, plus a self-loop Linear
  per node type; ReLU and dropout after every layer but the last;
* ``NeighborSampler(fanouts)`` and ``dgl.dataloading.DataLoader(shuffle=True)`` over the target
  type's training nodes; the target type's features gathered per batch, as the example does;
* sampled validation accuracy after every epoch (as the homogeneous reference), and the test
  accuracy at the end from full-neighbour blocks (``MultiLayerFullNeighborSampler``), the example's
  ``test``.

It writes the JSON object :mod:`largegraph.benchmark.reference` writes for node classification.
"""
from __future__ import annotations

import argparse
import sys
import time

import dgl
import dgl.nn as dglnn
import torch
import torch.nn.functional as F
from torch import nn

from largegraph.benchmark.reference import accuracy, ogb_meta, run_main, train_epoch


class RelGraphConvLayer(nn.Module):
    """One RGCN layer as DGL's example builds it: a mean per relation through its own weight, summed
    over the relations into each destination type, plus that type's self-loop."""

    def __init__(self, in_dim: int, out_dim: int, ntypes: list[str], rel_names: list[str], last: bool,
                 dropout: float):
        super().__init__()
        self.conv = dglnn.HeteroGraphConv(
            {rel: dglnn.GraphConv(in_dim, out_dim, norm="right", weight=False, bias=False) for rel in rel_names})
        self.weight = nn.ModuleDict({rel: nn.Linear(in_dim, out_dim, bias=False) for rel in rel_names})
        self.loop = nn.ModuleDict({t: nn.Linear(in_dim, out_dim) for t in ntypes})
        self.last = last
        self.dropout = nn.Dropout(dropout)

    def forward(self, block, h: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        weights = {rel: {"weight": linear.weight.t()} for rel, linear in self.weight.items()}
        out = self.conv(block, h, mod_kwargs=weights)
        for t, y in out.items():
            y = y + self.loop[t](h[t][: block.num_dst_nodes(t)])
            out[t] = y if self.last else self.dropout(F.relu(y))
        return out


class EntityClassify(nn.Module):
    """The example's model: ``num_layers`` RGCN layers, the last one to the classes."""

    def __init__(self, g, in_dim: int, hidden: int, num_classes: int, num_layers: int, dropout: float):
        super().__init__()
        rel_names = sorted(set(g.etypes))
        sizes = [in_dim] + [hidden] * (num_layers - 1) + [num_classes]
        self.layers = nn.ModuleList(
            RelGraphConvLayer(a, b, g.ntypes, rel_names, i == num_layers - 1, dropout)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])))

    def forward(self, blocks, h: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for layer, block in zip(self.layers, blocks):
            h = layer(block, h)
        return h


def load(args: argparse.Namespace):
    """(graph with reverse relations, target type, its labels, its split, classes) through OGB's loader."""
    from ogb.nodeproppred import DglNodePropPredDataset

    dataset = DglNodePropPredDataset(args.name, meta_dict=ogb_meta(args.root, args.name))
    g, labels = dataset[0]
    (target, y), = labels.items()  # one labelled type (ogbn-mag: paper)
    split = {k: v[target] for k, v in dataset.get_idx_split().items()}
    g = dgl.AddReverse(sym_new_etype=True)(g)
    return g, target, y.view(-1).long(), split, int(y.max()) + 1


def run_typed(args: argparse.Namespace) -> dict:
    g, target, labels, split, num_classes = load(args)
    feat = g.nodes[target].data["feat"].float()
    featureless = {t: g.num_nodes(t) for t in g.ntypes if "feat" not in g.nodes[t].data}
    embed = dglnn.HeteroEmbedding(featureless, feat.shape[1])
    model = EntityClassify(g, feat.shape[1], args.hidden, num_classes, args.layers, args.dropout)
    opt = torch.optim.Adam([*model.parameters(), *embed.parameters()], lr=args.lr, weight_decay=args.weight_decay)

    def inputs(input_nodes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        h = embed({t: ids for t, ids in input_nodes.items() if t in featureless})
        h[target] = feat[input_nodes[target]]
        return h

    def logits(input_nodes, blocks) -> torch.Tensor:
        return model(blocks, inputs(input_nodes))[target]

    def loader(ids: torch.Tensor, sampler, batch_size: int, shuffle: bool):
        return dgl.dataloading.DataLoader(g, {target: ids}, sampler, batch_size=batch_size, shuffle=shuffle,
                                          drop_last=False, num_workers=args.workers)

    def score(batches) -> float:
        return accuracy(model, batches, lambda input_nodes, _o, blocks: logits(input_nodes, blocks),
                        lambda _i, output_nodes, _b: labels[output_nodes[target]])

    sampler = dgl.dataloading.NeighborSampler(args.fanouts)
    train_loader = loader(split["train"], sampler, args.batch_size, True)
    val_loader = loader(split["valid"], sampler, args.batch_size, True)
    out = {"epochs": [], "edges": g.num_edges(), "nodes": g.num_nodes()}

    def batch_loss(input_nodes, output_nodes, blocks):
        return F.cross_entropy(logits(input_nodes, blocks), labels[output_nodes[target]])

    for _epoch in range(args.epochs):
        stats, train_s = train_epoch(model, opt, train_loader, batch_loss)
        start = time.perf_counter()
        valid_acc = score(val_loader)
        out["epochs"].append({"train_s": train_s, "valid_s": time.perf_counter() - start,
                              "seeds": len(split["train"]), "valid_acc": valid_acc, **stats})
    full = dgl.dataloading.MultiLayerFullNeighborSampler(args.layers)
    out["test_score"] = score(loader(split["test"], full, args.eval_batch_size, False))
    out["metric"] = "acc"
    return out


def main(argv: list[str] | None = None) -> int:
    return run_main(argv, {"typed": run_typed}, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
