"""What the benchmark scripts share: graph-shape options, a dataset root that cleans up after
itself, peak memory and running the CLI. The scripts run as ``python bench/NAME.py``, which puts this folder on
``sys.path``."""
from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from largegraph.data.dataset_format import dataset_dir

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_gb(who: int = resource.RUSAGE_SELF) -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(who).ru_maxrss / 2**20


def add_graph_args(parser: argparse.ArgumentParser, *, nodes: int, avg_degree: float, classes: int,
                   feat_dim: int) -> None:
    """The synthetic node graph's shape, with this benchmark's defaults."""
    parser.add_argument("--nodes", type=int, default=nodes)
    parser.add_argument("--avg-degree", type=float, default=avg_degree)
    parser.add_argument("--classes", type=int, default=classes)
    parser.add_argument("--feat-dim", type=int, default=feat_dim)


def add_root_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default=None, help="dataset root (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the written dataset afterwards")


@contextmanager
def dataset_root(args: argparse.Namespace, name: str) -> Iterator[Path]:
    """``--root`` (or a new temporary one); afterwards the dataset ``name`` is removed, or the
    temporary root with it, unless ``--keep``."""
    made = args.root is None
    root = Path(tempfile.mkdtemp(prefix="largegraph-bench-")) if made else Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        yield root
    finally:
        if args.keep:
            print(f"kept {dataset_dir(root, name)}", flush=True)
        elif made:
            shutil.rmtree(root, ignore_errors=True)
        else:
            shutil.rmtree(dataset_dir(root, name), ignore_errors=True)


def cli(*args) -> str:
    """``largegraph ARGS`` from the project root; its stdout, or exit with its stderr's tail."""
    result = subprocess.run([sys.executable, "-m", "largegraph", *map(str, args)], cwd=ROOT, capture_output=True,
                            text=True, stdin=subprocess.DEVNULL)
    if result.returncode:
        sys.exit(result.stderr[-2000:])
    return result.stdout


def add_work_args(parser: argparse.ArgumentParser, overrides_help: str = "overrides of the config") -> None:
    """``--work``, ``--config`` and the config overrides of a benchmark that imports user files."""
    parser.add_argument("--work", type=Path, default=None, help="keep files here (default: a temporary folder)")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "social_sage.yaml")
    parser.add_argument("overrides", nargs="*", help=overrides_help)


@contextmanager
def work_dir(args: argparse.Namespace) -> Iterator[Path]:
    """``--work`` (created), or a temporary folder removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        yield work


def import_files(name: str, root: Path, files: dict) -> str:
    """``largegraph data import`` of edge, label and feature files with a seeded 60/20/20 split; its output."""
    return cli("data", "import", "--name", name, "--root", root, "--edges", files["edges"], "--labels",
               files["labels"], "--features", files["features"], "--split-ratios", "0.6,0.2,0.2")
