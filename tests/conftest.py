"""Shared fixtures: small real datasets written in OGB's layout, and a way to run the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A dataset root holding `tiny` (2k nodes) written by the synthetic generator."""
    from largegraph.data.synthetic import SynthNodeParams, write_synthetic_node_dataset

    root = tmp_path_factory.mktemp("datasets")
    params = SynthNodeParams(num_nodes=2000, avg_degree=10, num_classes=4, feat_dim=16, seed=1)
    write_synthetic_node_dataset(root, "tiny", params, layout="csv")
    return root


@pytest.fixture(scope="session")
def small_link_root(tmp_path_factory) -> Path:
    """A dataset root holding `links` (1.5k nodes, edge split, Hits@K) written by the synthetic generator."""
    from largegraph.data.synthetic import SynthLinkParams, write_synthetic_link_dataset

    root = tmp_path_factory.mktemp("link-datasets")
    params = SynthLinkParams(num_nodes=1500, avg_degree=8, num_communities=12, feat_dim=8, seed=4)
    write_synthetic_link_dataset(root, "links", params, split_style="edge")
    return root


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m largegraph ARGS` as a real subprocess with stdin closed (``env``: extra variables)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "largegraph", *map(str, args)], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)


def write_config(path: Path, data_name: str, root: Path, **sections) -> Path:
    """Write a small job YAML; `sections` are merged over a fast default job."""
    import yaml

    cfg = {
        "name": "t", "seed": 0, "data": {"name": data_name, "root": str(root)},
        "sampler": {"fanouts": [5, 5], "batch_size": 256, "eval_batch_size": 1024},
        "model": {"arch": "sage", "hidden": 32, "num_layers": 2},
        "train": {"epochs": 2, "lr": 0.01},
    }
    for key, value in sections.items():
        cfg.setdefault(key, {})
        if isinstance(value, dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    path.write_text(yaml.safe_dump(cfg))
    return path
