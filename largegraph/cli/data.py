"""``data synth|import|inspect|planetoid``: datasets in OGB's on-disk layout."""
from __future__ import annotations

import argparse
import time
from typing import get_args

from largegraph.cli.parsing import OneLineParser
from largegraph.core.argtypes import add_valued_options, non_negative_int, positive, ratios
from largegraph.core.errors import ConfigError


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

def cmd_synth_hetero(args: argparse.Namespace) -> int:
    from largegraph.data.synthetic_hetero import SynthHeteroParams, write_synthetic_hetero_dataset

    params = SynthHeteroParams(**_given(scale=args.scale, num_classes=args.classes, feat_dim=args.feat_dim,
                                        homophily=args.homophily, feature_signal=args.feature_signal, seed=args.seed))
    started = time.perf_counter()
    return _wrote(args, write_synthetic_hetero_dataset(args.root, args.name, params), started)

# What `data import` suggests training an imported graph with.
IMPORT_CONFIGS = {"node": "configs/social_sage.yaml", "link": "configs/social_link_sage.yaml"}


def cmd_import(args: argparse.Namespace) -> int:
    from largegraph.data.node_import import describe_edges, import_node_dataset
    from largegraph.data.link_import import import_link_dataset
    from largegraph.data.dataset_format import read_meta

    if args.nodes:
        return _import_typed(args)
    if len(args.edges) != 1:
        raise ConfigError("several --edges files make a typed graph: give each node type's file with --nodes "
                          "FILE[:TYPE] and each relation as FILE:SRC_TYPE:RELATION:DST_TYPE")
    started = time.perf_counter()
    common = dict(name=args.name, root=args.root, edges=args.edges[0], features=args.features, src_col=args.src_col,
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


# Flags of the homogeneous import a typed one has no use for, with what to do instead.
_UNTYPED_FLAGS = ("features", "structural", "split_dir", "time_col", "src_col", "dst_col", "metric")


def _import_typed(args: argparse.Namespace) -> int:
    from largegraph.data.dataset_format import read_meta
    from largegraph.data.hetero_import import import_hetero_dataset

    given = [f"--{k.replace('_', '-')}" for k in _UNTYPED_FLAGS if getattr(args, k)]
    if given or args.task != "node":
        raise ConfigError(f"{', '.join(given) or '--task'} is for untyped imports; a typed import (--nodes) takes "
                          f"features from the node files' numeric columns and serves both tasks (link prediction "
                          f"with data.relation)")
    started = time.perf_counter()
    path = import_hetero_dataset(name=args.name, root=args.root, nodes=args.nodes, edges=args.edges,
                                 labels=args.labels, id_col=args.id_col, split_ratios=args.split_ratios,
                                 seed=args.seed)
    meta = read_meta(path)
    for ntype, count in meta["num_nodes"].items():
        width = meta["feat_dims"].get(ntype, 0)
        labelled = f", labels: {meta['num_classes']} classes" if ntype == meta["label_type"] else ""
        print(f"node type {ntype}: {count} nodes, {f'{width} features' if width else 'no features (learned table)'}"
              f"{labelled}")
    for relation, count in meta["num_edges"].items():
        print(f"relation {relation.replace('___', ':')}: {count} edges")
    _wrote(args, path, started)
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

    typed = _typed_dataset(args.dir)
    if typed is not None:
        from largegraph.data.hetero_inspect import describe_typed

        print(describe_typed(typed, as_json_output=args.json))
        return 0

    overrides = {"features": args.features, "feature_dtype": args.feature_dtype,
                 "feature_cache_mb": args.feature_cache_mb, "sparse_features": args.sparse_features}
    print(inspect(args.dir, overrides, args.nproc, as_json_output=args.json))
    return 0


def _typed_dataset(directory: str):
    """The typed dataset in ``directory``, or None (an untyped one, or not a dataset: inspect says which)."""
    from pathlib import Path

    from largegraph.data.dataset_format import META_FILE, read_meta
    from largegraph.data.hetero_ogb import find_typed

    path = Path(directory).expanduser()
    if not path.is_dir():
        return None
    meta = read_meta(path) if (path / META_FILE).exists() else {}
    return find_typed(meta.get("name") or path.name.removesuffix("_dgl").replace("_", "-"), path.parent)


def cmd_planetoid(args: argparse.Namespace) -> int:
    from largegraph.data.planetoid import convert_planetoid

    return _wrote(args, convert_planetoid(args.src, args.root, name=args.name, prefix=args.prefix))


def _data_settings(p: argparse.ArgumentParser, keys: tuple[str, ...]) -> None:
    """The job's ``data.*`` settings ``keys`` as options; their choices and defaults come from the schema."""
    from largegraph.config import DataConfig

    for key in keys:
        field = DataConfig.model_fields[key]
        choices = list(get_args(field.annotation)) or None
        p.add_argument("--" + key.replace("_", "-"), choices=choices, type=None if choices else non_negative_int,
                       default=field.default, help=f"data.{key} of the job (default {field.default})")


def add_data_commands(sub) -> None:
    data = sub.add_parser("data", help="create datasets in OGB's on-disk layout").add_subparsers(
        dest="data_cmd", required=True, metavar="{synth,import,planetoid,inspect}", parser_class=OneLineParser)
    synth = data.add_parser("synth", help="generate a synthetic graph").add_subparsers(
        dest="synth_kind", required=True, metavar="{node,link,hetero}", parser_class=OneLineParser)
    # what every dataset-writing command takes: the dataset's name and the root it goes under
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--name", required=True)
    out.add_argument("--root", default="data", help="dataset root (data.root when training; default data)")
    out.add_argument("--seed", type=int, default=0)
    p = synth.add_parser("link", parents=[out],
                         help="link prediction graph: communities, held-out valid/test edges, negatives")
    add_valued_options(p, (("--nodes", int, 50_000), ("--avg-degree", float, 16.0), ("--communities", int, None),
                           ("--homophily", float, None)))
    p.add_argument("--feat-dim", type=int, default=None, help="0 = no node features (learnable embeddings)")
    p.add_argument("--split-style", choices=["edge", "source_target"], default="edge",
                   help="edge: collab/ddi style (hits@K); source_target: citation2 style (MRR)")
    p.add_argument("--num-neg", type=int, default=100, help="negatives per positive (source_target style)")
    p.set_defaults(func=cmd_synth_link)
    p = synth.add_parser("node", parents=[out], help="node classification graph: power-law degrees, class communities")
    add_valued_options(p, (("--nodes", int, 50_000), ("--avg-degree", float, 20.0), ("--classes", int, 8),
                           ("--feat-dim", int, 64), ("--homophily", float, 0.8)))
    p.add_argument("--feature-signal", type=float, default=None, help="class signal in features (default: calibrated)")
    p.add_argument("--label-noise", type=float, default=None, help="fraction of random labels (default: calibrated)")
    p.add_argument("--degree-exponent", type=float, default=2.5)
    p.add_argument("--split-ratios", type=ratios, default=(0.6, 0.2, 0.2))
    p.add_argument("--layout", choices=["auto", "csv", "binary"], default="auto")
    p.set_defaults(func=cmd_synth_node)
    p = synth.add_parser("hetero", parents=[out], help="typed graph shaped like ogbn-mag (papers, authors, "
                         "institutions, fields of study; venue labels, time split) at any --scale")
    p.add_argument("--scale", type=positive(float), default=None, help="share of ogbn-mag's size (default 0.1)")
    add_valued_options(p, (("--classes", int, None), ("--feat-dim", int, None), ("--homophily", float, None),
                           ("--feature-signal", float, None)))
    p.set_defaults(func=cmd_synth_hetero)

    p = data.add_parser("import", parents=[out], help="convert your own edge list and node files")
    p.add_argument("--task", choices=["node", "link"], default="node",
                   help="node (default): node classification, needs --labels; link: link prediction from the edges")
    p.add_argument("--edges", required=True, action="append",
                   help="CSV with a header; first two columns are src,dst. Typed graphs: FILE:SRC_TYPE:RELATION:DST_TYPE, "
                        "once per relation")
    p.add_argument("--nodes", action="append",
                   help="typed graphs: a CSV per node type (FILE or FILE:TYPE; type = file stem unless given): an id "
                        "column (--id-col, else the first) and numeric feature columns (none: featureless type)")
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
    p.add_argument("--labels", help="node task: CSV with an id column and a label column; typed graphs: "
                                    "FILE:COLUMN of a --nodes file (or FILE:TYPE:COLUMN)")
    p.add_argument("--src-col")
    p.add_argument("--dst-col")
    p.add_argument("--id-col", default="id")
    p.add_argument("--label-col", default="label")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--split-ratios", type=ratios, default=(0.8, 0.1, 0.1),
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
    _data_settings(p, ("features", "feature_dtype", "feature_cache_mb", "sparse_features"))
    p.add_argument("--json", action="store_true", help="print the byte counts as one JSON object")
    p.set_defaults(func=cmd_inspect)

    p = data.add_parser("planetoid", help="convert a Planetoid dataset (e.g. ../shared/data/planetoid_cora)")
    p.add_argument("--src", required=True)
    p.add_argument("--name", default="cora")
    p.add_argument("--prefix", default="ind.cora")
    p.add_argument("--root", default="data")
    p.set_defaults(func=cmd_planetoid)
