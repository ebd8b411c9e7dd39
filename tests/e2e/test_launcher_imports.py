"""A process that only starts others (``train --nproc N``, the distdgl launcher) imports neither torch
nor DGL: it would hold a few hundred MiB of private memory beside the workers for nothing.

Each launcher runs for real under ``python -X importtime``, which lists every module the launcher
itself imports on its stderr (the workers it starts are not started with the flag).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, write_config

from largegraph.backends.distdgl.hostlock import DIR_ENV

pytestmark = pytest.mark.slow

HEAVY = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(torch|dgl)(\.|$)")


def _launcher(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    env.pop("PYTHONPROFILEIMPORTTIME", None)  # workers must not add their own import lists
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "largegraph", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)


def _heavy_imports(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if HEAVY.match(line)]


def test_nproc_launcher_starts_and_watches_workers_without_torch(tmp_path):
    # workers start, import torch and refuse the missing dataset: the whole launch path runs
    job = write_config(tmp_path / "job.yaml", "absent", tmp_path)
    result = _launcher("train", job, "--run-dir", tmp_path / "run", "--nproc", "2")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "largegraph: error: unknown dataset 'absent'" in result.stderr, result.stderr[-3000:]  # a worker's refusal
    assert "import time:" in result.stderr
    assert _heavy_imports(result.stderr) == []
    # the workers read the config the launcher froze into the run directory
    assert (tmp_path / "run" / "config.resolved.yaml").is_file()


def test_distdgl_launcher_starts_and_watches_its_servers_without_torch_or_dgl(tmp_path):
    # partitions that fit the job on paper but hold no graph: the server fails, the launcher says so
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "g.json").write_text(json.dumps({"graph_name": "g", "num_parts": 1}))
    (parts / "largegraph-partition.json").write_text(json.dumps(
        {"task": "node_classification", "graph_name": "g", "dataset": {"name": "absent"}, "parts": []}))
    job = write_config(tmp_path / "job.yaml", "absent", tmp_path)
    result = _launcher("train", job, f"distributed.part_config={parts / 'g.json'}", "--distdgl-local", "1",
                       "--run-dir", tmp_path / "run", env={DIR_ENV: str(tmp_path)})  # not the machine's lock
    assert result.returncode != 0
    assert "largegraph: distdgl: 1 machine(s)" in result.stderr, result.stderr[-3000:]
    assert _heavy_imports(result.stderr) == []
