"""Epoch time of largegraph's training loop as a ratio against a plain DGL loop run beside it.

Usage::

    python bench/epoch_time.py                                   # 100k nodes, fanouts 10,10, batch 1024
    python bench/epoch_time.py --nodes 20000 --num-workers 2 --epochs 3

What is measured: the wall-clock time of one training epoch (sampling, feature gathering, forward,
backward, optimizer step; no evaluation) of

* ``plain_dgl``: the textbook loop of DGL's GraphSAGE example (``NeighborSampler`` with prefetched
  features and labels, ``dgl.dataloading.DataLoader`` over the training ids with ``shuffle=True``,
  two mean ``SAGEConv`` layers and a linear head, Adam, cross-entropy), written out in this file;
* ``largegraph``: ``Trainer.train_one_epoch()`` of a job built with ``build_config``/``assemble``,
  i.e. largegraph's own loader (deterministic per-batch seeding), model, loss and bookkeeping.

Both train on the same in-memory graph (loaded once), with the same fanouts, batch size, sampling
workers, model shape (hidden width, dropout, head) and torch thread count.

Why the reference runs in the same process and run: an absolute epoch time says little on its own;
it depends on the machine, its load at that moment, the library builds and the graph. A ratio against
a reference measured on the same graph, in the same process, with its epochs interleaved with ours
(ref, ours, ref, ours...) cancels most of that: background load, CPU frequency and cache effects hit
both loops alike. The first epoch of each loop is a warm-up (graph formats, allocator, worker start)
and is left out of the mean when more than one epoch is run.

Prints ``graph ...``, ``plain_dgl epoch_s=... batches_per_s=...``, ``largegraph epoch_s=...
batches_per_s=...``, ``ratio largegraph/plain_dgl=...`` (ratio of mean epoch times; below 1 means
largegraph is faster; the same ratio of the fastest epochs follows in brackets) and ``peak_rss=...``
(the main process; with workers also the largest child process, i.e. a worker).

Sampling threads: largegraph samples on one OpenMP thread (for repeatable batches) while the plain
loop lets DGL use ``--threads`` threads, which also selects DGL's fused CPU sampler; with
``--num-workers`` > 0 both sample in worker processes, one thread each (DGL sets that for its
workers).
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import dgl
import dgl.nn
import torch
import torch.nn.functional as F
from torch import nn

from common import add_graph_args, add_root_args, dataset_root, peak_rss_gb
from largegraph.config import DataConfig, JobConfig, build_config
from largegraph.data import GraphData, load_dataset
from largegraph.data.synthetic import SynthNodeParams, write_synthetic_node_dataset
from largegraph.rundir import RunDir
from largegraph.train import assemble
from largegraph.trainer import Trainer

DATASET_NAME = "bench-epoch-time"
DROPOUT = 0.5  # largegraph's default model.dropout, used by both loops
LR = 0.003  # largegraph's default train.lr, used by both loops


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_graph_args(parser, nodes=100_000, avg_degree=20.0, classes=8, feat_dim=64)
    parser.add_argument("--fanouts", default="10,10", help="comma-separated, one per layer (-1 = all)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2,
                        help="epochs per loop; the mean leaves out the first unless only one is run")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch.set_num_threads for both loops (default: torch's default)")
    add_root_args(parser)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.fanouts = [int(f) for f in args.fanouts.split(",")]
    if len(args.fanouts) != 2:
        parser.error("--fanouts needs two entries: both loops use a 2-layer GraphSAGE")
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    return args


# --- the data -------------------------------------------------------------------------------------
def make_data(args: argparse.Namespace, root: Path) -> GraphData:
    """Write the synthetic graph in OGB's layout and load it once, as a training job would."""
    params = SynthNodeParams(num_nodes=args.nodes, avg_degree=args.avg_degree, num_classes=args.classes,
                             feat_dim=args.feat_dim, seed=args.seed)
    write_synthetic_node_dataset(root, DATASET_NAME, params)
    return load_dataset(DataConfig(name=DATASET_NAME, root=str(root)))


# --- the reference: DGL's GraphSAGE example loop ------------------------------------------------------
class PlainSAGE(nn.Module):
    """Two mean SAGEConv layers (in -> hidden -> hidden) and a linear head (hidden -> classes),
    the same shape as largegraph's sage encoder + node-classification head."""

    def __init__(self, in_dim: int, hidden: int, num_classes: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList([dgl.nn.SAGEConv(in_dim, hidden, "mean"),
                                     dgl.nn.SAGEConv(hidden, hidden, "mean")])
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, blocks: list, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, (layer, block) in enumerate(zip(self.layers, blocks)):
            h = layer(block, h)
            if i != len(self.layers) - 1:
                h = self.dropout(F.relu(h))
        return self.head(h)


class PlainLoop:
    """The textbook DGL mini-batch loop; one call of :meth:`train_epoch` is one epoch."""

    def __init__(self, data: GraphData, args: argparse.Namespace):
        g = data.graph
        sampler = dgl.dataloading.NeighborSampler(
            args.fanouts, prefetch_node_feats=["feat"], prefetch_labels=["label"])
        self.loader = dgl.dataloading.DataLoader(
            g, data.split["train"], sampler, batch_size=args.batch_size, shuffle=True, drop_last=False,
            num_workers=args.num_workers)
        torch.manual_seed(args.seed)
        self.model = PlainSAGE(data.feat_dim, args.hidden, data.num_classes, DROPOUT)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR)

    def train_epoch(self) -> int:
        """Train one epoch; returns the number of batches."""
        self.model.train()
        batches = 0
        for _input_nodes, _output_nodes, blocks in self.loader:
            x = blocks[0].srcdata["feat"]
            y = blocks[-1].dstdata["label"]
            loss = F.cross_entropy(self.model(blocks, x), y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            batches += 1
        return batches


# --- largegraph's loop ------------------------------------------------------------------------------------
def job_config(args: argparse.Namespace, root: Path) -> JobConfig:
    return build_config({
        "name": "bench-epoch-time",
        "seed": args.seed,
        "data": {"name": DATASET_NAME, "root": str(root)},
        "sampler": {"fanouts": args.fanouts, "batch_size": args.batch_size, "num_workers": args.num_workers,
                    "shuffle": True, "drop_last": False},
        "model": {"arch": "sage", "num_layers": 2, "hidden": args.hidden, "aggregator": "mean",
                  "dropout": DROPOUT},
        "train": {"epochs": args.epochs, "lr": LR, "optimizer": "adam"},
    }, source="bench/epoch_time.py")


class LargegraphLoop:
    """largegraph's Trainer, driven one training epoch at a time (no evaluation, no checkpoints)."""

    def __init__(self, data: GraphData, args: argparse.Namespace, data_root: Path, run_path: Path):
        cfg = job_config(args, data_root)
        run = RunDir(run_path)
        run.create(cfg)
        self.trainer = Trainer(cfg.train, assemble(cfg, data, run, torch.device("cpu")), log=lambda line: None)

    def train_epoch(self, epoch: int) -> int:
        """Train epoch ``epoch``; returns the number of batches."""
        return int(self.trainer.train_one_epoch(epoch)["batches"])


# --- timing --------------------------------------------------------------------------------------------
def timed(fn: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    batches = fn()
    return time.perf_counter() - start, batches


def summarize(times: list[float], batches: list[int]) -> tuple[float, float, float]:
    """Mean epoch seconds, batches/s and the fastest epoch over the epochs after the first (all if
    only one). The fastest epoch is the least disturbed by other load on the machine."""
    keep = slice(1, None) if len(times) > 1 else slice(None)
    epoch_s = statistics.fmean(times[keep])
    return epoch_s, statistics.fmean(batches[keep]) / epoch_s, min(times[keep])


def run_benchmark(args: argparse.Namespace, root: Path, run_path: Path) -> None:
    torch.set_num_threads(args.threads)
    data = make_data(args, root)
    g = data.graph
    print(f"graph nodes={g.num_nodes()} edges={g.num_edges()} train_nodes={len(data.split['train'])} "
          f"fanouts={','.join(map(str, args.fanouts))} batch={args.batch_size} workers={args.num_workers} "
          f"threads={torch.get_num_threads()} epochs={args.epochs}", flush=True)
    plain = PlainLoop(data, args)
    ours = LargegraphLoop(data, args, root, run_path)
    times: dict[str, list[float]] = {"plain_dgl": [], "largegraph": []}
    batches: dict[str, list[int]] = {"plain_dgl": [], "largegraph": []}
    for epoch in range(args.epochs):
        # Interleaved, so that load changes on the machine hit both loops.
        for name, fn in (("plain_dgl", plain.train_epoch), ("largegraph", lambda: ours.train_epoch(epoch))):
            seconds, n = timed(fn)
            times[name].append(seconds)
            batches[name].append(n)
            print(f"  {name} epoch {epoch + 1}: {seconds:.2f}s ({n} batches)", file=sys.stderr, flush=True)
    stats = {name: summarize(times[name], batches[name]) for name in times}
    for name, (epoch_s, rate, fastest) in stats.items():
        print(f"{name} epoch_s={epoch_s:.3f} batches_per_s={rate:.2f} min_epoch_s={fastest:.3f}", flush=True)
    print(f"ratio largegraph/plain_dgl={stats['largegraph'][0] / stats['plain_dgl'][0]:.2f} "
          f"(of fastest epochs: {stats['largegraph'][2] / stats['plain_dgl'][2]:.2f})", flush=True)
    # For RUSAGE_CHILDREN Linux reports the largest waited-for child: with workers, a sampling worker
    # (loading also starts a small child, so the number means nothing without workers).
    workers = f" largest_child_rss={peak_rss_gb(resource.RUSAGE_CHILDREN):.2f}GB" if args.num_workers else ""
    print(f"peak_rss={peak_rss_gb():.2f}GB{workers}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with dataset_root(args, DATASET_NAME) as root, tempfile.TemporaryDirectory(prefix="largegraph-epoch-run-") as run:
        run_benchmark(args, root, Path(run))  # run: the trainer's run directory
    return 0

if __name__ == "__main__":
    sys.exit(main())
