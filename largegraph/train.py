"""One training run, wired together: config -> dataset -> task -> trainer -> run directory."""
from __future__ import annotations

import time

from largegraph.config import load_config
from largegraph.device import resolve_device
from largegraph.errors import CheckpointError, ConfigError
from largegraph.report import summary_line
from largegraph.rundir import RunDir, default_run_dir
from largegraph.tasks import build_task, load_task_data
from largegraph.trainer import Trainer


def resume_run(run_dir: str, *, device: str = "auto") -> str:
    """Continue the run in ``run_dir`` with its own resolved config (``largegraph resume``)."""
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise CheckpointError(f"run directory {run.path} does not exist")
    if not run.config_path.is_file():
        raise CheckpointError(f"{run.path} has no config.resolved.yaml; is it a largegraph run directory?")
    return run_training(str(run.config_path), [], run_dir=str(run.path), device=device, resume="auto")


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
            to reuse a directory that already holds checkpoints; any other value is the path of a
            checkpoint of this run directory to continue from.
    """
    cfg = load_config(config_path, overrides)
    dev = resolve_device(device)
    run = RunDir(run_dir or default_run_dir(cfg))
    has_checkpoints = run.checkpoints.is_dir() and any(run.checkpoints.glob("step-*.json"))
    if has_checkpoints and resume == "never":
        raise ConfigError(f"{run.path} already holds checkpoints; pass --resume auto to continue it or choose another --run-dir")
    if resume not in ("auto", "never") and not run_dir:
        raise ConfigError("--resume PATH needs --run-dir: the checkpoint must belong to that run directory")
    start = time.perf_counter()
    data = load_task_data(cfg)
    _say(f"dataset {data.describe()} (loaded in {time.perf_counter() - start:.1f}s)")
    run.create(cfg)
    task = build_task(cfg, data)
    trainer = Trainer(cfg, task, run, dev, log=_say)
    if resume not in ("auto", "never"):
        trainer.resume(resume)
    elif has_checkpoints:
        trainer.resume()
    params = sum(p.numel() for p in trainer.model.parameters())
    _say(f"model {cfg.model.arch} ({params:,} parameters) on {dev}; run dir {run.path}")
    summary = trainer.fit()
    from largegraph.report import summary_table

    _say(summary_table(run, task.metric))
    return summary_line(summary, task.metric)
