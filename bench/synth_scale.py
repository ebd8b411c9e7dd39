"""Time the synthetic-graph pipeline at ogbn-products scale: generate, write, first load through OGB.

Usage::

    python bench/synth_scale.py                      # 2.45 M nodes, avg degree 50.5, 100-d, 47 classes
    python bench/synth_scale.py --nodes 200000 --keep --root /data/bench

Prints one line per phase (``synth_generate``, ``synth_write``, ``ogb_first_load``,
``ogb_cached_load``) and the process's peak resident memory (``peak_rss``). The first load is what
a training job pays once per dataset: OGB parses the raw files and caches its processed graph, then
largegraph validates it and adds reverse edges. The cached load is every later job.
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

from common import add_graph_args, add_root_args, dataset_root, peak_rss_gb
from largegraph.config import DataConfig
from largegraph.data import load_dataset
from largegraph.data.ogb_writer import write_node_dataset
from largegraph.data.synthetic import SynthNodeParams, generate_node_graph


def dir_size_gb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**30


def timed(work, *args, **kwargs):
    """(what ``work(*args, **kwargs)`` returns, the seconds it took)."""
    start = time.perf_counter()
    result = work(*args, **kwargs)
    return result, time.perf_counter() - start


def report(label: str, details: str, seconds: float) -> None:
    """One measured line: what was done, its figures, its time and the peak memory so far."""
    print(f"{label} {details} time={seconds:.1f}s rss_so_far={peak_rss_gb():.2f}GB", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_graph_args(parser, nodes=2_450_000, avg_degree=50.5, classes=47, feat_dim=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", default="auto", choices=["auto", "csv", "binary"])
    parser.add_argument("--name", default="synth-scale")
    add_root_args(parser)
    args = parser.parse_args(argv)
    params = SynthNodeParams(num_nodes=args.nodes, avg_degree=args.avg_degree, num_classes=args.classes,
                             feat_dim=args.feat_dim, seed=args.seed)
    with dataset_root(args, args.name) as root:
        data, elapsed = timed(generate_node_graph, params)
        info = data["info"]
        report("synth_generate", f"nodes={args.nodes} edges={info['num_edges']} feat_dim={args.feat_dim} "
               f"classes={args.classes} homophily={info['edge_homophily']:.4f} max_degree={info['max_degree']}",
               elapsed)

        # The same call write_synthetic_node_dataset makes, timed on its own.
        directory, elapsed = timed(
            write_node_dataset, root, args.name, edges=data["edges"], num_nodes=args.nodes, feat=data["feat"],
            labels=data["labels"], num_classes=data["num_classes"], split=data["split"],
            raw_format=args.layout, info=info)
        report("synth_write", f"dir={directory} size={dir_size_gb(directory):.2f}GB", elapsed)
        # A training job starts from the files, not from the generator's arrays.
        del data
        gc.collect()

        for label in ("ogb_first_load", "ogb_cached_load"):
            loaded, elapsed = timed(load_dataset, DataConfig(name=args.name, root=str(root)))
            report(label, f"nodes={loaded.num_nodes} edges={loaded.graph.num_edges()} (with reverse edges)", elapsed)
            del loaded
            gc.collect()
        print(f"peak_rss={peak_rss_gb():.2f}GB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
