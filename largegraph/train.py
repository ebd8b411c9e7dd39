"""One training run, wired together: config -> dataset -> task -> trainer -> run directory."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from largegraph.config import load_config
from largegraph.data import load_dataset
from largegraph.device import resolve_device
from largegraph.errors import ConfigError
from largegraph.report import summary_line
from largegraph.rundir import RunDir, default_run_dir
from largegraph.tasks import build_task
from largegraph.trainer import Trainer


def _say(line: str) -> None:
    print(line, flush=True)


def run_training(config_path: str, overrides: list[str], *, run_dir: str | None = None,
                 device: str = "auto", resume: str = "auto") -> str:
    """Train the job a YAML file describes and return its one-line summary.

    Args:
        config_path: YAML job file.
        overrides: dotted ``key=value`` overrides.
        run_dir: output directory (default ``runs/<name>-<UTC time>``).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        resume: ``auto`` continues from the run directory's newest valid checkpoint; ``never`` refuses
            to reuse a directory that already holds checkpoints.
    """
    cfg = load_config(config_path, overrides)
    dev = resolve_device(device)
    run = RunDir(run_dir or default_run_dir(cfg))
    has_checkpoints = run.checkpoints.is_dir() and any(run.checkpoints.glob("step-*.json"))
    if has_checkpoints and resume == "never":
        raise ConfigError(f"{run.path} already holds checkpoints; pass --resume auto to continue it or choose another --run-dir")
    start = time.perf_counter()
    data = load_dataset(cfg.data)
    _say(f"dataset {data.describe()} (loaded in {time.perf_counter() - start:.1f}s)")
    run.create(cfg)
    task = build_task(cfg, data)
    trainer = Trainer(cfg, task, run, dev, log=_say)
    if has_checkpoints:
        trainer.resume_latest()
    params = sum(p.numel() for p in trainer.model.parameters())
    _say(f"model {cfg.model.arch} ({params:,} parameters) on {dev}; run dir {run.path}")
    summary = trainer.fit()
    from largegraph.report import summary_table

    _say(summary_table(run))
    return summary_line(summary, task.metric)
