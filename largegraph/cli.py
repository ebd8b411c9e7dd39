"""The ``largegraph`` command: argparse front door that turns errors into one line and an exit code.

Exit codes: 0 success, 1 crashed (or a worker did), 2 bad input (config, dataset, checkpoint, arguments),
130 interrupted, 143 stopped by SIGTERM after writing a checkpoint (resume continues it).
"""
from __future__ import annotations

import argparse
import faulthandler
import os
import sys
import time
import warnings

from largegraph.core import logs
from largegraph.core.argtypes import non_negative_int, positive
from largegraph.core.errors import (EXIT_BAD_INPUT, EXIT_CRASHED, EXIT_INTERRUPTED, EXIT_OK, ConfigError, LargeGraphError,
                               SharedError, Stopped)


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus an error; we promise one line on stderr."""

    def error(self, message: str):
        print(f"largegraph: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _ratios(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.8,0.1,0.1, got {text!r}") from None
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.8,0.1,0.1, got {text!r}")
    return parts


def _scales(text: str) -> list[float]:
    try:
        scales = [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected scales like 0.01,0.1,1.0, got {text!r}") from None
    if len(scales) < 2 or any(s <= 0 for s in scales) or scales != sorted(scales):
        raise argparse.ArgumentTypeError(f"expected two or more increasing positive scales, got {text!r}")
    return scales


# --- commands ----------------------------------------------------------------------------------------
def _dist_options(args: argparse.Namespace) -> dict:
    return {"backend": args.backend, "dist_timeout": args.dist_timeout}


def _worker_options(args: argparse.Namespace) -> list[str]:
    """The options every worker of a launch is given (the config travels as a frozen file)."""
    return ["--device", args.device, "--backend", args.backend, "--dist-timeout", str(args.dist_timeout)]


def _print_summary(summary_line: str) -> int:
    if summary_line:  # ranks > 0 have none
        print(summary_line)
    return 0


def _distdgl_overrides(args: argparse.Namespace) -> list[str]:
    """``--ip-config`` and ``--distdgl-local`` as the config keys they set (so that every process of
    the job, and the job service, reads the same config)."""
    extra = []
    if getattr(args, "ip_config", None):
        extra += ["distributed.mode=distdgl", f"distributed.ip_config={os.path.abspath(args.ip_config)}"]
    if getattr(args, "distdgl_local", None):
        extra += ["distributed.mode=distdgl", f"distributed.local={args.distdgl_local}"]
    return extra


def _started_by_a_launcher(args: argparse.Namespace) -> bool:
    """A distdgl server or trainer, or a torchrun worker: it trains with the frozen config it was given."""
    from largegraph.backends.distdgl import roles

    return roles.role() is not None or ("TORCHELASTIC_RUN_ID" in os.environ and args.nproc == 1)


def _launch_or_train(args: argparse.Namespace, config: str, overrides: list[str], run_dir: str | None) -> int:
    """``train`` and ``resume``: start a launcher when the job needs workers, else train here.

    A launcher resolves the config once, freezes it into the run directory and hands its workers
    that file: they never resolve ``config`` and ``overrides`` again.
    """
    if not _started_by_a_launcher(args):
        from largegraph.config import load_config

        cfg = load_config(config, overrides)
        if cfg.distributed.mode == "distdgl":
            return _start_distdgl_job(args, cfg, run_dir)
        if args.nproc > 1:
            return _start_workers(args, cfg, run_dir)
    from largegraph.backends import backend_for
    from largegraph.backends.distdgl.backend import run_as_role
    from largegraph.training.run import run_training

    return _print_summary(run_as_role(lambda stop: run_training(
        config, overrides, backend_for=backend_for, run_dir=run_dir, device=args.device, resume=args.resume,
        stop=stop, **_dist_options(args))))


def _start_workers(args: argparse.Namespace, cfg, run_dir: str | None) -> int:
    """``--nproc N``: the same command as N torch.distributed workers (:mod:`largegraph.launcher`)."""
    from largegraph.launcher import check_device, freeze_config, run_workers

    if "TORCHELASTIC_RUN_ID" in os.environ:
        raise ConfigError("--nproc starts its own workers; under torchrun set the number of workers with "
                          "torchrun's --nproc-per-node instead")
    if args.backend == "nccl" and args.device == "cpu":
        raise ConfigError("--backend nccl needs CUDA GPUs (one per worker); use --backend gloo or --device cuda")
    if args.device.startswith("cuda") or args.backend == "nccl":
        check_device("cuda")  # no GPU, or DGL without CUDA: said once here rather than by every worker
    # The run directory is fixed here so that workers a restart starts again come back to it.
    run_dir, frozen = freeze_config(cfg, run_dir, args.resume)
    worker_argv = ["train", str(frozen), "--run-dir", str(run_dir), "--resume", args.resume]
    return run_workers(args.nproc, args.max_restarts, worker_argv + _worker_options(args))


def _start_distdgl_job(args: argparse.Namespace, cfg, run_dir: str | None) -> int:
    """Start a distdgl job's graph servers and trainers (:mod:`largegraph.backends.distdgl.launcher`)."""
    from largegraph.backends.distdgl.launcher import check_job, run_job
    from largegraph.launcher import freeze_config

    if args.nproc > 1:
        raise ConfigError("--nproc starts torchrun workers over the whole graph; with distributed.mode: distdgl "
                          "the trainers are set by --distdgl-local N or distributed.trainers_per_machine")
    # absolute paths: the servers and trainers may start in another directory of another machine
    part_config = os.path.abspath(cfg.distributed.part_config)
    cfg = cfg.model_copy(update={"distributed": cfg.distributed.model_copy(update={"part_config": part_config})})
    check_job(cfg)  # before the run directory is written
    run_dir, frozen = (path.absolute() for path in freeze_config(cfg, run_dir, args.resume))
    argv = [sys.executable, "-m", "largegraph", "train", str(frozen), "--run-dir", str(run_dir),
            "--resume", args.resume, "--device", args.device, "--dist-timeout", str(args.dist_timeout)]
    return run_job(cfg, argv, run_dir)


def cmd_train(args: argparse.Namespace) -> int:
    return _launch_or_train(args, args.config, [*args.overrides, *_distdgl_overrides(args)], args.run_dir)


def cmd_resume(args: argparse.Namespace) -> int:
    from largegraph.core.errors import CheckpointError
    from largegraph.training.rundir import RunDir

    run = RunDir.existing(args.run_dir, RunDir.CONFIG, CheckpointError)  # the run continues with its own config
    args.resume = "auto"
    return _launch_or_train(args, str(run.config_path), _distdgl_overrides(args), str(run.path))


def _given(**values) -> dict:
    """The options the user set (argparse leaves the others None, so the dataclass defaults apply)."""
    return {k: v for k, v in values.items() if v is not None}


def _wrote(args: argparse.Namespace, path, started: float | None = None) -> int:
    took = f" in {time.perf_counter() - started:.1f}s" if started is not None else ""
    print(f"wrote {args.name} to {path}{took} (train with data.name={args.name} data.root={args.root})")
    return 0


def cmd_synth_node(args: argparse.Namespace) -> int:
    from largegraph.data.synthetic import SynthNodeParams, write_synthetic_node_dataset

    params = SynthNodeParams(**_given(
        num_nodes=args.nodes, avg_degree=args.avg_degree, num_classes=args.classes, feat_dim=args.feat_dim,
        homophily=args.homophily, feature_signal=args.feature_signal, label_noise=args.label_noise,
        degree_exponent=args.degree_exponent, split_ratios=args.split_ratios, seed=args.seed))
    started = time.perf_counter()
    return _wrote(args, write_synthetic_node_dataset(args.root, args.name, params, raw_format=args.layout), started)


def cmd_synth_link(args: argparse.Namespace) -> int:
    from largegraph.data.synthetic import SynthLinkParams, write_synthetic_link_dataset

    params = SynthLinkParams(**_given(num_nodes=args.nodes, avg_degree=args.avg_degree,
                                      num_communities=args.communities, feat_dim=args.feat_dim,
                                      homophily=args.homophily, seed=args.seed))
    started = time.perf_counter()
    path = write_synthetic_link_dataset(args.root, args.name, params, split_style=args.split_style,
                                        num_neg=args.num_neg)
    return _wrote(args, path, started)


# What `data import` suggests training an imported graph with.
IMPORT_CONFIGS = {"node": "configs/social_sage.yaml", "link": "configs/social_link_sage.yaml"}


def cmd_import(args: argparse.Namespace) -> int:
    from largegraph.data.node_import import describe_edges, import_node_dataset
    from largegraph.data.link_import import import_link_dataset
    from largegraph.data.dataset_format import read_meta

    started = time.perf_counter()
    common = dict(name=args.name, root=args.root, edges=args.edges, features=args.features, src_col=args.src_col,
                  dst_col=args.dst_col, id_col=args.id_col, directed=args.directed, seed=args.seed,
                  structural=args.structural, pe_dim=args.pe_dim)
    if args.task == "link":
        if args.feature_storage == "sparse":
            raise ConfigError("--feature-storage sparse is for --task node: link prediction trains on dense "
                              "features (a sparse file is densified); drop the flag or use --task node")
        if args.labels or args.split_dir:
            raise ConfigError(f"--{'labels' if args.labels else 'split-dir'} is for --task node; a link dataset is "
                              f"split by --split-ratios (and --time-col)")
        path = import_link_dataset(**common, time_col=args.time_col, split_ratios=args.split_ratios,
                                   split_style=args.split_style, metric=args.metric, num_neg=args.num_neg)
    else:
        if args.time_col or args.metric or args.split_style != "edge":
            raise ConfigError("--time-col, --metric and --split-style are for --task link")
        path = import_node_dataset(**common, labels=args.labels, label_col=args.label_col,
                                   split_ratios=None if args.split_dir else args.split_ratios,
                                   split_dir=args.split_dir, feature_storage=args.feature_storage)
    info = read_meta(path).get("info", {})
    print(f"edges: {describe_edges(info, args.directed)}")
    print(f"node input: {_node_input_line(info.get('node_input', {}))}")
    meta = read_meta(path)
    if meta.get("feature_storage") == "sparse":
        nodes, width, nnz = meta["num_nodes"], meta["feat_dim"], meta["feat_nnz"]
        print(f"features stored sparse (CSR): {width} columns, {nnz / max(nodes, 1):.1f} stored values per node "
              f"({100 * nnz / max(nodes * width, 1):.2f}% dense)")
    if args.task == "link":
        sizes = info.get("num_edges", {})
        by = f"by {args.time_col}" if args.time_col else "at random"
        print(f"split {by}: " + " ".join(f"{part}={n}" for part, n in sizes.items())
              + f" edges, {args.split_style} style ({read_meta(path)['ogb_meta']['eval metric']})")
    _wrote(args, path, started)
    print(f"next: largegraph train {IMPORT_CONFIGS[args.task]} data.name={args.name} data.root={args.root}")
    return 0


def _node_input_line(record: dict) -> str:
    kind = record.get("kind")
    if kind == "embedding":
        return "no features: the model learns an embedding table (one row per node)"
    structural = record.get("structural")
    pe = f" + {record['pe_dim']} {structural} positional encodings" if record.get("pe_dim") else ""
    made = f"log-degree{pe}, computed at import"
    return made if kind == "structural" else f"the features file{' + ' + made if structural else ''}"


def cmd_inspect(args: argparse.Namespace) -> int:
    from largegraph.data.footprint import inspect

    overrides = {"features": args.features, "feature_dtype": args.feature_dtype,
                 "feature_cache_mb": args.feature_cache_mb, "sparse_features": args.sparse_features}
    print(inspect(args.dir, overrides, args.nproc, as_json_output=args.json))
    return 0


def cmd_planetoid(args: argparse.Namespace) -> int:
    from largegraph.data.planetoid import convert_planetoid

    return _wrote(args, convert_planetoid(args.src, args.root, name=args.name, prefix=args.prefix))


def cmd_predict(args: argparse.Namespace) -> int:
    from largegraph.inference import predict
    from largegraph.core.tables import table_format

    table_format(args.out)  # a bad --out is refused before minutes of inference
    loaded = predict.load_run(args.run_dir, args.data, args.root, args.device)
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
    selected = predict.read_node_list(args.nodes, loaded.nodes, loaded.data.name) if args.nodes else None
    rows = predict.export_embeddings(loaded, args.out, selected)
    print(f"wrote {rows} embeddings to {args.out}")
    return 0


def cmd_partition(args: argparse.Namespace) -> int:
    from largegraph.config import load_config
    from largegraph.backends.distdgl.partition import partition_dataset
    from largegraph.core import logs

    logs.setup()
    cfg = load_config(args.config, args.overrides)
    partition_dataset(cfg, args.parts, args.out, method=args.method, force=args.force)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from largegraph.benchmark.command import SWEEP_SCALES, run_bench
    from largegraph.core import logs

    logs.setup()
    scales = (args.scales or list(SWEEP_SCALES)) if args.sweep else [args.scale]
    out = Path(args.out or f"runs/bench-{args.mode}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")
    run_bench(args.mode, scales, args.epochs, args.repeats, args.workers, args.nproc, out,
              Path(args.root) if args.root else None, args.keep_data)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from largegraph.training.report import report

    print(report(args.run_dir))
    return 0


# --- parser ------------------------------------------------------------------------------------------
def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model from a YAML job file",
                       description="Train from a YAML job file; trailing key=value pairs override it "
                                   "(e.g. model.hidden=256 train.epochs=5).")
    p.add_argument("config", help="YAML job file, e.g. configs/node_sage_synth.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    p.add_argument("--run-dir", help="where outputs go (default runs/<name>-<UTC time>)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--resume", default="auto", metavar="auto|never|PATH",
                   help="auto (default): continue from the run directory's newest valid checkpoint, if any; "
                        "never: refuse a run directory with checkpoints; PATH: continue from that checkpoint")
    _add_workers(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("resume", help="continue a run from its run directory")
    p.add_argument("run_dir")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    _add_workers(p)
    p.set_defaults(func=cmd_resume)


def _add_workers(p) -> None:
    g = p.add_argument_group("data-parallel workers (torch.distributed)")
    g.add_argument("--nproc", type=positive(int), default=1,
                   help="start N workers on this machine through torchrun (default 1: this process trains)")
    g.add_argument("--max-restarts", type=non_negative_int, default=0,
                   help="with --nproc: restart the workers this often after a failure; each restart resumes "
                        "from the newest checkpoint")
    g.add_argument("--backend", default="auto", choices=["auto", "gloo", "nccl"],
                   help="auto (default): NCCL on GPUs, gloo on CPU")
    g.add_argument("--dist-timeout", type=positive(float), default=1800, metavar="SECONDS",
                   help="how long a worker waits for its peers (collectives, rank 0's evaluation) before "
                        "failing instead of hanging (default 1800)")
    g = p.add_argument_group("DGL's distributed engine (distributed.mode: distdgl; see docs/distdgl.md)")
    g.add_argument("--ip-config", metavar="FILE",
                   help="the machines, one `IP [PORT]` per line, one per partition (sets distributed.ip_config)")
    g.add_argument("--distdgl-local", type=positive(int), metavar="N",
                   help="run N graph servers and N trainers on this machine (sets distributed.local)")
    g.add_argument("--distdgl-job", help=argparse.SUPPRESS)  # set by the launcher on what it starts


def _add_data(sub) -> None:
    data = sub.add_parser("data", help="create datasets in OGB's on-disk layout").add_subparsers(
        dest="data_cmd", required=True, metavar="{synth,import,planetoid,inspect}", parser_class=_Parser)
    synth = data.add_parser("synth", help="generate a synthetic graph").add_subparsers(
        dest="synth_kind", required=True, metavar="{node,link}", parser_class=_Parser)
    # what every dataset-writing command takes: the dataset's name and the root it goes under
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--name", required=True)
    out.add_argument("--root", default="data", help="dataset root (data.root when training; default data)")
    out.add_argument("--seed", type=int, default=0)
    p = synth.add_parser("link", parents=[out],
                         help="link prediction graph: communities, held-out valid/test edges, negatives")
    p.add_argument("--nodes", type=int, default=50_000)
    p.add_argument("--avg-degree", type=float, default=16.0)
    p.add_argument("--communities", type=int, default=None)
    p.add_argument("--feat-dim", type=int, default=None, help="0 = no node features (learnable embeddings)")
    p.add_argument("--homophily", type=float, default=None)
    p.add_argument("--split-style", choices=["edge", "source_target"], default="edge",
                   help="edge: collab/ddi style (hits@K); source_target: citation2 style (MRR)")
    p.add_argument("--num-neg", type=int, default=100, help="negatives per positive (source_target style)")
    p.set_defaults(func=cmd_synth_link)
    p = synth.add_parser("node", parents=[out], help="node classification graph: power-law degrees, class communities")
    p.add_argument("--nodes", type=int, default=50_000)
    p.add_argument("--avg-degree", type=float, default=20.0)
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--feat-dim", type=int, default=64)
    p.add_argument("--homophily", type=float, default=0.8)
    p.add_argument("--feature-signal", type=float, default=None, help="class signal in features (default: calibrated)")
    p.add_argument("--label-noise", type=float, default=None, help="fraction of random labels (default: calibrated)")
    p.add_argument("--degree-exponent", type=float, default=2.5)
    p.add_argument("--split-ratios", type=_ratios, default=(0.6, 0.2, 0.2))
    p.add_argument("--layout", choices=["auto", "csv", "binary"], default="auto")
    p.set_defaults(func=cmd_synth_node)

    p = data.add_parser("import", parents=[out], help="convert your own edge list and node files")
    p.add_argument("--task", choices=["node", "link"], default="node",
                   help="node (default): node classification, needs --labels; link: link prediction from the edges")
    p.add_argument("--edges", required=True, help="CSV with a header; first two columns are src,dst")
    p.add_argument("--features", help="optional: CSV (id + feature columns), .npy (row = integer id), .npz "
                                      "(scipy.sparse.save_npz, row = integer id) or .json (id -> active feature "
                                      "ids); without it the model learns node embeddings")
    p.add_argument("--feature-storage", choices=["auto", "dense", "sparse"], default="auto",
                   help="node task: store features as CSR (sparse) or dense; auto (default): sparse for .json and "
                        ".npz files, dense otherwise")
    p.add_argument("--structural", choices=["degree", "rw", "lap"],
                   help="structural features computed here (appended to --features, if any): log-degree, plus "
                        "--pe-dim random-walk return probabilities (rw) or Laplacian eigenvectors (lap)")
    p.add_argument("--pe-dim", type=positive(int), default=8, help="positional encodings of rw/lap (default 8)")
    p.add_argument("--labels", help="node task: CSV with an id column and a label column")
    p.add_argument("--src-col")
    p.add_argument("--dst-col")
    p.add_argument("--id-col", default="id")
    p.add_argument("--label-col", default="label")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--split-ratios", type=_ratios, default=(0.8, 0.1, 0.1),
                       help="train,valid,test fractions of the labelled nodes (node) or of the edges (link)")
    group.add_argument("--split-dir", help="node task: directory with train.csv, valid.csv, test.csv of node ids")
    p.add_argument("--time-col", help="link task: numeric timestamp column of the edges; the split follows time")
    p.add_argument("--split-style", choices=["edge", "source_target"], default="edge",
                   help="link task: edge (collab style, Hits@K) or source_target (citation2 style, MRR)")
    p.add_argument("--metric", choices=["hits@20", "hits@50", "hits@100", "mrr"],
                   help="link task: default hits@50 (edge) or mrr (source_target)")
    p.add_argument("--num-neg", type=positive(int), default=100,
                   help="link task, source_target style: negatives per held-out edge (default 100)")
    p.add_argument("--directed", action="store_true", help="keep edge direction (duplicates are still collapsed)")
    p.set_defaults(func=cmd_import)

    p = data.add_parser("inspect", help="what loading a dataset will cost: topology, features, labels, per worker")
    p.add_argument("dir", help="dataset folder, e.g. data/big or data/ogbn_products")
    p.add_argument("--nproc", type=positive(int), default=1, help="local workers the job will run (default 1)")
    p.add_argument("--features", choices=["auto", "memory", "mmap"], default="auto", help="data.features of the job")
    p.add_argument("--feature-dtype", choices=["float32", "float16", "bfloat16"], default="float32",
                   help="data.feature_dtype of the job")
    p.add_argument("--feature-cache-mb", type=non_negative_int, default=0, help="data.feature_cache_mb of the job")
    p.add_argument("--sparse-features", choices=["keep", "densify"], default="keep",
                   help="data.sparse_features of the job (datasets storing sparse features)")
    p.add_argument("--json", action="store_true", help="print the byte counts as one JSON object")
    p.set_defaults(func=cmd_inspect)

    p = data.add_parser("planetoid", help="convert a Planetoid dataset (e.g. ../shared/data/planetoid_cora)")
    p.add_argument("--src", required=True)
    p.add_argument("--name", default="cora")
    p.add_argument("--prefix", default="ind.cora")
    p.add_argument("--root", default="data")
    p.set_defaults(func=cmd_planetoid)


def _add_predict(sub) -> None:
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


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="time largegraph against DGL's documented loop on a synthetic graph",
                       description="Alternates DGL's documented training loop (a plain subprocess) and "
                                   "`largegraph train` on the same synthetic OGB-layout graph; prints both sides "
                                   "and the ratio, writes bench.json and bench.png (docs: bench/README.md).")
    p.add_argument("mode", choices=["node", "link"], help="node: ogbn-products-shaped; link: ogbl-collab-shaped")
    p.add_argument("--scale", type=positive(float), default=0.1, help="graph size as a fraction of the OGB dataset's")
    p.add_argument("--epochs", type=positive(int), default=10)
    p.add_argument("--repeats", type=positive(int), default=1, help="(reference, largegraph) pairs")
    p.add_argument("--workers", type=non_negative_int, default=0, help="sampling worker processes, both sides")
    p.add_argument("--nproc", type=positive(int), default=1, help="largegraph's data-parallel workers (the reference "
                                                                  "is DGL's single-process loop)")
    p.add_argument("--sweep", action="store_true", help="one pair per scale 0.01, 0.1, 1.0 (--scale ignored)")
    p.add_argument("--scales", type=_scales, help="with --sweep: other scales, e.g. 0.01,0.03,0.1")
    p.add_argument("--out", help="where bench.json, bench.png, logs and run directories go "
                                 "(default runs/bench-<mode>-<UTC time>)")
    p.add_argument("--root", help="dataset root to write the graph to and keep (default: <out>/data, removed after)")
    p.add_argument("--keep-data", action="store_true", help="keep <out>/data afterwards")
    p.set_defaults(func=cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="largegraph", description="Sampled GNN training on OGB-scale graphs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                metavar="{train,resume,data,partition,predict,embed,bench,report,serve,submit,status,logs,cancel,token}")
    _add_train(sub)
    _add_data(sub)
    _add_predict(sub)
    from largegraph.jobs.cli import add_job_commands

    add_job_commands(sub, _Parser)
    p = sub.add_parser("partition", help="cut a job's dataset into parts for DGL's distributed engine (METIS)",
                       description="Partition the job's prepared dataset with dgl.distributed.partition_graph, "
                                   "carrying features, labels and the split; reuses existing partitions unless --force.")
    p.add_argument("config", help="YAML job file whose data section names the dataset")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    p.add_argument("--parts", type=positive(int), required=True, help="number of partitions (machines)")
    p.add_argument("--out", required=True, help="output folder; its name is the graph's name (DGL's graph_name)")
    p.add_argument("--method", choices=["metis", "random"], default="metis",
                   help="metis (default): fewer cut edges; random: balanced by chance")
    p.add_argument("--force", action="store_true", help="partition again even if --out holds these partitions")
    p.set_defaults(func=cmd_partition)
    _add_bench(sub)
    p = sub.add_parser("report", help="redraw curves.png and print a run's summary")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_report)
    return parser


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``largegraph`` console script."""
    from largegraph.core.processes import exit_now

    if not _is_torchrun_worker():
        code = _main(argv)
        if _trains(argv):
            # Everything a run writes is closed and fsynced by now. Native teardown at interpreter
            # exit (DGL/libxsmm and torch thread pools) once aborted a finished run on a loaded
            # machine, turning success into SIGABRT, which an orchestrator would retry; skip it.
            exit_now(code)
        return code
    # A torchrun worker never returns: tearing down gloo's process group can deadlock (see
    # largegraph.training.distributed), so even a crash ends through exit_now.
    try:
        code = _main(argv)
    except SystemExit as exc:
        # sys.exit() means success (DGL's graph server leaves that way once the trainers are done)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # a crash: its traceback is the report, then the worker must still exit
        if _lost_peer(exc):
            # Another worker died; the launcher names it. Its peers need not add a traceback each.
            print(f"largegraph: [rank {_rank()}] stopped: lost the connection to another worker ({exc})",
                  file=sys.stderr)
        else:
            import traceback

            traceback.print_exc()
        code = 1
    exit_now(code)
    return code  # not reached


def _lost_peer(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("gloo" in text or "NCCL" in text) and (
        "Connection reset" in text or "Connection closed" in text or "Broken pipe" in text or "Timed out" in text)


def _trains(argv: list[str] | None) -> bool:
    """Whether the command line ran a training command (train, resume)."""
    words = [w for w in (sys.argv[1:] if argv is None else argv) if not w.startswith("-")]
    return bool(words) and words[0] in ("train", "resume")


def _is_torchrun_worker() -> bool:
    if os.environ.get("LARGEGRAPH_DISTDGL_ROLE"):
        return True  # a distdgl server or trainer: ends like a torchrun worker, whatever happens
    try:
        return "TORCHELASTIC_RUN_ID" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def _main(argv: list[str] | None) -> int:
    # A crash inside DGL or torch native code should at least say where Python was.
    faulthandler.enable()
    logs.setup()
    # Before anything large is allocated; torchrun workers run this command too (largegraph.core.allocator).
    from largegraph.core import allocator

    allocator.apply()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides may come before or after options (`train CFG --run-dir D model.hidden=8`), which
    # argparse cannot split for a positional list; collect the stragglers here.
    if hasattr(args, "overrides"):
        args.overrides += [x for x in extra if "=" in x and not x.startswith("-")]
        extra = [x for x in extra if not ("=" in x and not x.startswith("-"))]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # DGL repeats this tuning hint for every data loader; it is advice, not a problem with the run.
    warnings.filterwarnings("ignore", message="Dataloader CPU affinity opt is not enabled")
    try:
        return args.func(args)
    except Stopped as exc:
        if _rank() == 0:
            print(f"largegraph: {exc}", file=sys.stderr)
        return exc.exit_code
    except LargeGraphError as exc:
        rank = _rank()
        # Under torchrun, an error rank 0 met is reported by rank 0 alone; another rank's own
        # error names the rank.
        if rank == 0:
            print(f"largegraph: error: {exc}", file=sys.stderr)
        elif not isinstance(exc, SharedError):
            print(f"largegraph: error: [rank {rank}] {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("largegraph: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `largegraph status --json | head`: the reader left; nothing to report. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except MemoryError:
        print("largegraph: error: out of memory; lower sampler.batch_size, fanouts or eval_batch_size", file=sys.stderr)
        return EXIT_CRASHED


if __name__ == "__main__":
    sys.exit(main())
