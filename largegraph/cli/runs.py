"""Commands over finished runs (``predict``, ``embed``, ``report``) and ``bench``."""
from __future__ import annotations

import argparse
import time

from largegraph.core.argtypes import non_negative_int, positive, scales
from largegraph.core.errors import ConfigError


def cmd_predict(args: argparse.Namespace) -> int:
    from largegraph.inference import predict
    from largegraph.core.tables import table_format

    table_format(args.out)  # a bad --out is refused before minutes of inference
    loaded = predict.load_run(args.run_dir, args.data, args.root, args.device)
    if loaded.is_link and loaded.typed:
        raise ConfigError("predict on a typed link-prediction run is not supported yet; `largegraph embed` writes "
                          "every type's embeddings")
    if loaded.is_link:
        if args.nodes:
            raise ConfigError("--nodes is for node-classification runs; a link run takes --pairs FILE or "
                              "--top-k K --for FILE")
        if args.pairs and args.for_nodes:
            raise ConfigError("give either --pairs FILE or --top-k K --for FILE, not both")
        if args.pairs:
            rows = predict.score_pairs(loaded, args.pairs, args.out, args.src_col, args.dst_col)
        elif args.for_nodes and args.top_k:
            rows = predict.top_k_neighbours(loaded, args.for_nodes, args.top_k, args.out)
        else:
            raise ConfigError("a link run needs --pairs FILE (score candidate pairs) or --top-k K --for FILE "
                              "(the K best new neighbours of each listed node)")
    else:
        if args.pairs or args.for_nodes:
            raise ConfigError("--pairs and --for are for link-prediction runs; a node run takes --nodes FILE")
        selected = predict.read_node_list(args.nodes, loaded.nodes, loaded.data.name) if args.nodes else None
        rows = predict.predict_nodes(loaded, args.out, selected, args.top_k)
    print(f"wrote {rows} rows to {args.out}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from largegraph.inference import predict
    from largegraph.core.tables import table_format

    table_format(args.out, {".npy": "npy"})
    loaded = predict.load_run(args.run_dir, args.data, args.root, args.device)
    if loaded.typed and args.nodes:
        raise ConfigError("--nodes selects nodes of one type; a typed run's embeddings are written for every type")
    selected = predict.read_node_list(args.nodes, loaded.nodes, loaded.data.name) if args.nodes else None
    rows = predict.export_embeddings(loaded, args.out, selected)
    print(f"wrote {rows} embeddings to {args.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from largegraph.training.report import report

    print(report(args.run_dir))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from largegraph.benchmark.command import SWEEP_SCALES, run_bench

    chosen = (args.scales or list(SWEEP_SCALES)) if args.sweep else [args.scale]
    out = Path(args.out or f"runs/bench-{args.mode}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")
    run_bench(args.mode, chosen, args.epochs, args.repeats, args.workers, args.nproc, out,
              Path(args.root) if args.root else None, args.keep_data)
    return 0


def add_predict_commands(sub) -> None:
    # what predict and embed share: the run, the dataset, the device, the output and a node subset
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("run_dir", help="a finished run directory (holds model.pt)")
    common.add_argument("--out", required=True, help="output file; the extension picks the format")
    common.add_argument("--data", help="another dataset than the run's (data.name); must fit the model")
    common.add_argument("--root", help="its dataset root (default: the run's data.root)")
    common.add_argument("--nodes", help="CSV of original node ids (column id, or the only column): only these")
    common.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p = sub.add_parser("predict", parents=[common], help="apply a trained run: classes, or scores of node pairs",
                       description="Node runs: id, predicted class, class probabilities (or --top-k classes). "
                                   "Link runs: --pairs scores candidate pairs; --top-k K --for lists the K best "
                                   "new neighbours of each node. --out .csv or .parquet.")
    p.add_argument("--top-k", type=positive(int), help="node runs: the K likeliest classes instead of every "
                                                       "probability; link runs: neighbours per node of --for")
    p.add_argument("--pairs", help="link runs: CSV of candidate pairs (first two columns, or --src-col/--dst-col)")
    p.add_argument("--for", dest="for_nodes", help="link runs, with --top-k: CSV of node ids to find neighbours for")
    p.add_argument("--src-col")
    p.add_argument("--dst-col")
    p.set_defaults(func=cmd_predict)
    p = sub.add_parser("embed", parents=[common], help="export a trained run's node embeddings",
                       description="--out .npy (rows in node order; ids in <name>.ids.csv beside it), "
                                   ".csv or .parquet (id, e0, e1, ...).")
    p.set_defaults(func=cmd_embed)


def add_bench_command(sub) -> None:
    p = sub.add_parser("bench", help="time largegraph against DGL's documented loop on a synthetic graph",
                       description="Alternates DGL's documented training loop (a plain subprocess) and "
                                   "`largegraph train` on the same synthetic OGB-layout graph; prints both sides "
                                   "and the ratio, writes bench.json and bench.png (docs: bench/README.md).")
    p.add_argument("mode", choices=["node", "link", "typed"],
                   help="node: ogbn-products-shaped; link: ogbl-collab-shaped; typed: ogbn-mag-shaped, RGCN")
    p.add_argument("--scale", type=positive(float), default=0.1, help="graph size as a fraction of the OGB dataset's")
    p.add_argument("--epochs", type=positive(int), default=10)
    p.add_argument("--repeats", type=positive(int), default=1, help="(reference, largegraph) pairs")
    p.add_argument("--workers", type=non_negative_int, default=0, help="sampling worker processes, both sides")
    p.add_argument("--nproc", type=positive(int), default=1, help="largegraph's data-parallel workers (the reference "
                                                                  "is DGL's single-process loop)")
    p.add_argument("--sweep", action="store_true", help="one pair per scale 0.01, 0.1, 1.0 (--scale ignored)")
    p.add_argument("--scales", type=scales, help="with --sweep: other scales, e.g. 0.01,0.03,0.1")
    p.add_argument("--out", help="where bench.json, bench.png, logs and run directories go "
                                 "(default runs/bench-<mode>-<UTC time>)")
    p.add_argument("--root", help="dataset root to write the graph to and keep (default: <out>/data, removed after)")
    p.add_argument("--keep-data", action="store_true", help="keep <out>/data afterwards")
    p.set_defaults(func=cmd_bench)


def add_report_command(sub) -> None:
    p = sub.add_parser("report", help="redraw curves.png and print a run's summary")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_report)
