"""Link-prediction epoch time: full-graph steps and chunked scoring against DGL's edge-prediction blocks.

Usage::

    python bench/link_epoch.py                                      # ogbl-ddi from ../shared/data
    python bench/link_epoch.py --src /datasets/ogbl_ddi --epochs 3
    python bench/link_epoch.py --synth-nodes 5000                   # no ogbl-ddi: a dense synthetic graph

What is measured: the wall-clock time of one training epoch (negatives, message passing, edge
scorer, backward, optimizer step; no evaluation) of largegraph's Trainer on the same graph, with
every neighbour used and the batch's own edges (and their reverses) excluded, in three ways:

* ``blocks`` (the reference): DGL's ``as_edge_prediction_sampler`` over a full-neighbour sampler,
  i.e. ``sampler.fanouts: [-1, -1]``, two blocks of nearly every edge built per batch;
* ``full_graph``: ``sampler.full_graph: true``, each step runs the encoder over the training graph
  with the batch's edges masked out (a test checks that both score identically);
* ``full_graph_one_chunk``: the same, with the edge scorer run over all of a step's pairs at once
  instead of in 16 MiB pieces, i.e. what the CPU allocator does to large activations.

The loops run interleaved (blocks, full_graph, one chunk, blocks, ...) in one process so that load
on the machine hits them alike; the first round is a warm-up, left out of the means when more than
one epoch is run. Prints one ``<loop> epoch_s=...`` line per loop, then ``ratio <loop>/blocks=...``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from largegraph.config import build_config
from largegraph.core.argtypes import add_valued_options
from largegraph.data.link import load_link_dataset
from largegraph.data.synthetic import SynthLinkParams, write_synthetic_link_dataset
from largegraph.core.fsutil import mirror_with_symlinks
from largegraph.training.rundir import RunDir
from largegraph.tasks import link_prediction
from largegraph.backends.local import LocalBackend
from largegraph.training.assembly import assemble
from largegraph.training.trainer import Trainer

DEFAULT_SRC = Path(__file__).resolve().parents[2] / "shared" / "data" / "ogbl_ddi"
LOOPS = ("blocks", "full_graph", "full_graph_one_chunk")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="an ogbl-ddi directory (OGB's layout)")
    parser.add_argument("--synth-nodes", type=int, default=0,
                        help="use a synthetic featureless graph of this many nodes instead of --src")
    add_valued_options(parser, (("--epochs", int, 2), ("--batch-size", int, 65536), ("--hidden", int, 256),
                                ("--negatives", int, 1)))
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if not args.synth_nodes and not args.src.is_dir():
        parser.error(f"{args.src} is not a directory; give --src or --synth-nodes")
    return args


def dataset(args: argparse.Namespace, root: Path) -> str:
    """Make the dataset readable under ``root`` (OGB writes processed/ beside the raw files)."""
    if args.synth_nodes:
        # dense like ogbl-ddi (mean degree ~500 there), within what the generator can place
        params = SynthLinkParams(num_nodes=args.synth_nodes, avg_degree=min(200.0, args.synth_nodes / 50),
                                 num_communities=4, feat_dim=0, homophily=0.6, seed=0)
        write_synthetic_link_dataset(root, "bench-links", params)
        return "bench-links"
    mirror_with_symlinks(args.src, root / "ogbl_ddi")
    return "ogbl-ddi"


def trainer(args: argparse.Namespace, name: str, root: Path, data, full_graph: bool, run_path: Path) -> Trainer:
    cfg = build_config({
        "name": "bench-link-epoch", "task": "link_prediction",
        "data": {"name": name, "root": str(root)},
        "sampler": {"fanouts": [-1, -1], "full_graph": full_graph, "batch_size": args.batch_size},
        "model": {"arch": "sage", "hidden": args.hidden, "num_layers": 2, "dropout": 0.5},
        "link": {"predictor": "mlp", "predictor_layers": 2, "predictor_dropout": 0.5,
                 "negative_sampler": "global_uniform", "num_negatives": args.negatives},
        "train": {"epochs": args.epochs, "lr": 0.005, "grad_clip": 1.0, "precision": args.precision},
    }, source="bench/link_epoch.py")
    run = RunDir(run_path)
    run.create(cfg)
    return Trainer(cfg.train, assemble(cfg, LocalBackend(), data, run, torch.device("cpu")))


def train_epoch(t: Trainer, epoch: int, one_chunk: bool) -> float:
    chunk_bytes = link_prediction.CPU_CHUNK_BYTES
    if one_chunk:
        link_prediction.CPU_CHUNK_BYTES = 1 << 62
    start = time.perf_counter()
    try:
        t.train_one_epoch(epoch)
    finally:
        link_prediction.CPU_CHUNK_BYTES = chunk_bytes
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="largegraph-link-bench-") as tmp:
        root = Path(tmp)
        name = dataset(args, root / "data")
        data = load_link_dataset(name, root / "data")
        print(f"graph {name} nodes={data.num_nodes} edges={data.graph.num_edges()} batch={args.batch_size} "
              f"hidden={args.hidden} negatives={args.negatives} precision={args.precision} "
              f"threads={torch.get_num_threads()} epochs={args.epochs}", flush=True)
        trainers = {"blocks": trainer(args, name, root / "data", data, False, root / "run-blocks")}
        trainers["full_graph"] = trainer(args, name, root / "data", data, True, root / "run-full")
        trainers["full_graph_one_chunk"] = trainer(args, name, root / "data", data, True, root / "run-one")
        times: dict[str, list[float]] = {loop: [] for loop in LOOPS}
        for epoch in range(args.epochs):
            for loop in LOOPS:
                seconds = train_epoch(trainers[loop], epoch, one_chunk=loop == "full_graph_one_chunk")
                times[loop].append(seconds)
                print(f"  {loop} epoch {epoch + 1}: {seconds:.2f}s", file=sys.stderr, flush=True)
    print_results(times, args.epochs)
    return 0


def print_results(times: dict[str, list[float]], epochs: int) -> None:
    """Each loop's mean and fastest epoch (the first left out when there are more), then the ratios."""
    keep = slice(1, None) if epochs > 1 else slice(None)
    mean = {loop: statistics.fmean(times[loop][keep]) for loop in LOOPS}
    for loop in LOOPS:
        print(f"{loop} epoch_s={mean[loop]:.2f} min_epoch_s={min(times[loop][keep]):.2f}", flush=True)
    for loop in LOOPS[1:]:
        print(f"ratio {loop}/blocks={mean[loop] / mean['blocks']:.2f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
