"""Sparse multi-hot features against the same features densified: feature memory, epoch time and
test accuracy of the same job on the same imported graph (bench/README.md#sparse-features).

A synthetic social graph is written as a user's files (``edges.csv``, ``labels.csv`` with class
names, ``likes.json`` of active feature ids per user: ``--cols`` columns, about ``--active`` per
user, some typical of the user's class, the rest drawn at random; edges mostly within a class) and
imported with ``largegraph data import``, which stores the features sparse (CSR). The same job
(``configs/social_sage.yaml`` or ``--config``, ``--epochs`` epochs) then trains once per seed with
the features kept sparse (CSR rows per batch, a sparse first layer) and once with
``data.sparse_features=densify`` (today's dense path: dense rows per batch, a dense first layer).

Printed: the feature bytes of each processed cache (``largegraph data inspect --json``: what the
arrays occupy), the training seconds per epoch (``time_s`` of metrics.jsonl, mean over the epochs
after the first, then over seeds; and the fastest such epoch, which other jobs on a shared machine
disturb least), the mean test accuracy, and the ratios.

    python bench/sparse_features.py [--nodes 10000] [--cols 5000] [--active 15] [--epochs 5] [--seeds 0 1]
                                    [--work DIR] [override=value ...]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from common import add_work_args, cli, import_files, work_dir

from largegraph.core.argtypes import add_valued_options
from largegraph.training.rundir import RunDir

NAME = "likes-graph"


def write_user_files(folder: Path, nodes: int, cols: int, active: int, classes: int, avg_degree: float,
                     seed: int) -> dict[str, Path]:
    """A homophilous graph whose users each like ``~active`` of ``cols`` pages, as CSV/JSON files."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, classes, nodes)
    # Labels are partly noisy and features only partly typical, so that neither alone gives it away
    # and neighbours help: accuracy lands well below 100% and differences between paths would show.
    observed = np.where(rng.random(nodes) < 0.15, rng.integers(0, classes, nodes), label)
    members = [np.flatnonzero(label == c) for c in range(classes)]
    src = rng.integers(0, nodes, int(nodes * avg_degree / 2))
    within = rng.random(len(src)) < 0.75
    dst = rng.integers(0, nodes, len(src))
    for c in range(classes):
        pick = within & (label[src] == c)
        dst[pick] = rng.choice(members[c], pick.sum())
    typical = cols // (2 * classes)  # each class's own block of pages
    ids = np.array([f"user{i:06d}" for i in range(nodes)], dtype=object)
    likes = {}
    counts = np.clip(rng.poisson(active, nodes), 1, None)
    for i in range(nodes):
        own = rng.integers(0, typical, max(1, counts[i] // 3)) + label[i] * typical
        other = rng.integers(0, cols, counts[i] - len(own))
        likes[ids[i]] = sorted(set(own.tolist()) | set(other.tolist()))
    likes[ids[0]].append(cols - 1)  # the width is the largest id + 1
    files = {"edges": folder / "edges.csv", "labels": folder / "labels.csv", "features": folder / "likes.json"}
    pd.DataFrame({"src": ids[src], "dst": ids[dst]}).to_csv(files["edges"], index=False)
    pd.DataFrame({"id": ids, "label": [f"group-{c}" for c in observed]}).to_csv(files["labels"], index=False)
    files["features"].write_text(json.dumps(likes))
    return files


def train(config: Path, root: Path, run_dir: Path, seed: int, epochs: int, mode: str, overrides: list[str]) -> dict:
    """One run; returns its mean epoch seconds (after the first epoch) and test accuracy."""
    cli("train", config, f"data.name={NAME}", f"data.root={root}", f"data.sparse_features={mode}", f"seed={seed}",
        f"train.epochs={epochs}", *overrides, "--run-dir", run_dir)
    run = RunDir(run_dir)
    times = [r["time_s"] for r in run.read_metrics() if r.get("kind") == "epoch"]
    summary = run.read_summary()
    later = times[1:] if len(times) > 1 else times
    return {"epoch_s": float(np.mean(later)), "fastest_s": float(min(later)), "test_acc": summary["test_acc"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_valued_options(parser, (("--nodes", int, 10_000), ("--cols", int, 5_000), ("--active", float, 15),
                                ("--classes", int, 8), ("--avg-degree", float, 12), ("--epochs", int, 5)))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    add_work_args(parser, "overrides of the config, for both paths")
    args = parser.parse_args()
    with work_dir(args) as work:
        files = write_user_files(work, args.nodes, args.cols, args.active, args.classes, args.avg_degree, seed=0)
        root = work / "data"
        out = import_files(NAME, root, files)
        print("\n".join(line for line in out.splitlines() if line.startswith(("edges:", "features stored"))),
              flush=True)
        results: dict[str, list[dict]] = {"dense": [], "sparse": []}
        for seed in args.seeds:
            for path, mode in (("sparse", "keep"), ("dense", "densify")):
                r = train(args.config, root, work / f"run-{path}-{seed}", seed, args.epochs, mode, args.overrides)
                results[path].append(r)
                print(f"seed {seed} {path}: epoch_s={r['epoch_s']:.3f} test_acc={r['test_acc']:.4f}", flush=True)
        memory = {path: json.loads(cli("data", "inspect", root / NAME.replace("-", "_"), "--json",
                                       "--sparse-features", mode))["features"]
                  for path, mode in (("dense", "densify"), ("sparse", "keep"))}
        epoch = {p: float(np.mean([r["epoch_s"] for r in rs])) for p, rs in results.items()}
        # On a shared machine other jobs slow some epochs several-fold; the fastest is the least disturbed.
        fastest = {p: min(r["fastest_s"] for r in rs) for p, rs in results.items()}
        acc = {p: float(np.mean([r["test_acc"] for r in rs])) for p, rs in results.items()}
        print(f"feature memory: dense={memory['dense']} bytes ({memory['dense'] / 2**20:.1f} MiB) "
              f"sparse={memory['sparse']} bytes ({memory['sparse'] / 2**20:.2f} MiB)")
        print(f"epoch time: dense={epoch['dense']:.3f}s sparse={epoch['sparse']:.3f}s "
              f"(training seconds per epoch after the first, mean of {len(args.seeds)} seeds, {args.epochs} epochs)")
        print(f"fastest epoch: dense={fastest['dense']:.3f}s sparse={fastest['sparse']:.3f}s")
        print(f"test accuracy: dense={acc['dense']:.4f} sparse={acc['sparse']:.4f} (mean of {len(args.seeds)} seeds)")
        print(f"ratio dense/sparse feature memory: {memory['dense'] / memory['sparse']:.1f}x (target >= 50x)")
        print(f"ratio dense/sparse epoch time: {epoch['dense'] / epoch['sparse']:.1f}x (target >= 3x)")
        print(f"ratio dense/sparse fastest epoch: {fastest['dense'] / fastest['sparse']:.1f}x")
        print(f"accuracy sparse - dense: {100 * (acc['sparse'] - acc['dense']):+.2f} points (target within 0.5)")


if __name__ == "__main__":
    main()
