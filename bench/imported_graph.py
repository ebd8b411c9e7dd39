"""A real graph imported from CSV, as a user would bring one: configs/social_sage.yaml against a plain
full-batch two-layer GraphSAGE on the same split (bench/README.md#imported-graphs).

Cora (../shared/data/planetoid_cora) is written as a user's files: ``edges.csv`` with string ids,
``labels.csv`` with class names and ``features.json`` of active (multi-hot) feature indices. It is
imported with a seeded 60/20/20 split (``largegraph data import``), trained with
``configs/social_sage.yaml`` for each seed, and a full-batch GraphSAGE-mean (hidden 128, dropout 0.5,
Adam lr 0.01, weight decay 5e-4, 200 epochs, weights of the best validation epoch) is trained on the
very same dataset, features and split.

    python bench/imported_graph.py [--seeds 0 1 2] [--work DIR] [--config FILE] [override=value ...]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from common import ROOT, add_work_args, cli, import_files, work_dir

from largegraph.training.rundir import RunDir

CORA = ROOT.parent / "shared" / "data" / "planetoid_cora"
CLASS_NAMES = ["case-based", "genetic-algorithms", "neural-networks", "probabilistic-methods",
               "reinforcement-learning", "rule-learning", "theory"]


def write_user_files(folder: Path) -> dict[str, Path]:
    """Cora as CSV/JSON files with string node ids and class names."""
    from largegraph.data.planetoid import read_planetoid

    cora = read_planetoid(CORA)
    ids = np.array([f"paper-{i}" for i in range(cora["num_nodes"])], dtype=object)
    edges = cora["edges"]
    files = {"edges": folder / "edges.csv", "labels": folder / "labels.csv", "features": folder / "features.json"}
    pd.DataFrame({"source": ids[edges[:, 0]], "target": ids[edges[:, 1]]}).to_csv(files["edges"], index=False)
    labelled = cora["labels"] >= 0
    pd.DataFrame({"id": ids[labelled], "label": np.array(CLASS_NAMES, dtype=object)[cora["labels"][labelled]]}
                 ).to_csv(files["labels"], index=False)
    files["features"].write_text(json.dumps({ids[i]: np.flatnonzero(row).tolist()
                                             for i, row in enumerate(cora["feat"])}))
    return files


def full_batch_sage(name: str, root: Path, seed: int, epochs: int = 200) -> float:
    """Test accuracy of a plain full-batch 2-layer GraphSAGE-mean at its best validation epoch."""
    import dgl
    import dgl.nn

    from largegraph.config import DataConfig
    from largegraph.data import load_dataset

    data = load_dataset(DataConfig(name=name, root=str(root)))
    g, y = data.graph, data.graph.ndata["label"]
    # the JSON features are stored sparse; this plain baseline takes them dense, as it always did
    x = data.sparse_feat.to_dense() if data.sparse_feat is not None else data.graph.ndata["feat"]
    torch.manual_seed(seed)
    layers = torch.nn.ModuleList([dgl.nn.SAGEConv(x.shape[1], 128, "mean"),
                                  dgl.nn.SAGEConv(128, data.num_classes, "mean")])
    opt = torch.optim.Adam(layers.parameters(), lr=0.01, weight_decay=5e-4)

    def forward(train: bool) -> torch.Tensor:
        layers.train(train)
        h = F.dropout(x, 0.5, train)
        h = F.dropout(F.relu(layers[0](g, h)), 0.5, train)
        return layers[1](g, h)

    best_valid, test_at_best = -1.0, 0.0
    for _ in range(epochs):
        loss = F.cross_entropy(forward(True)[data.split["train"]], y[data.split["train"]])
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            pred = forward(False).argmax(1)
        acc = {part: float((pred[idx] == y[idx]).float().mean()) for part, idx in data.split.items()}
        if acc["valid"] > best_valid:
            best_valid, test_at_best = acc["valid"], acc["test"]
    return test_at_best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    add_work_args(parser)
    args = parser.parse_args()
    with work_dir(args) as work:
        files = write_user_files(work)
        root = work / "data"
        print(import_files("cora-csv", root, files).strip())
        ours, plain = [], []
        for seed in args.seeds:
            run_dir = work / f"run-{seed}"
            cli("train", args.config, "data.name=cora-csv", f"data.root={root}",
                f"seed={seed}", *args.overrides, "--run-dir", run_dir)
            summary = RunDir(run_dir).read_summary()
            ours.append(summary["test_acc"])
            plain.append(full_batch_sage("cora-csv", root, seed))
            print(f"seed {seed}: {args.config.name} test {ours[-1]:.4f} (best epoch {summary['best_epoch']} of "
                  f"{summary['epochs']}), full-batch GraphSAGE test {plain[-1]:.4f}", flush=True)
        print(f"mean test accuracy: {args.config.name} {np.mean(ours):.4f}, full-batch GraphSAGE {np.mean(plain):.4f} "
              f"({len(args.seeds)} seeds)")


if __name__ == "__main__":
    main()
