"""One training run, wired together: config -> dataset -> task -> trainer -> run directory.

The same function runs a single process and every worker of a torchrun job; the workers learn
their rank from the environment (see :mod:`largegraph.distributed`).
"""
from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from typing import Iterator

from largegraph import distributed
from largegraph.config import JobConfig, load_config
from largegraph.distributed import DistEnv
from largegraph.errors import CheckpointError, ConfigError
from largegraph.report import summary_line, summary_table
from largegraph.rundir import Heartbeat, RunDir, default_run_dir
from largegraph.tasks import build_task, load_task_data
from largegraph.trainer import Trainer


def resume_run(run_dir: str, *, device: str = "auto", **dist_options) -> str:
    """Continue the run in ``run_dir`` with its own resolved config (``largegraph resume``)."""
    run = check_run_dir(run_dir)
    return run_training(str(run.config_path), [], run_dir=str(run.path), device=device, resume="auto", **dist_options)


def check_run_dir(run_dir: str) -> RunDir:
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise CheckpointError(f"run directory {run.path} does not exist")
    if not run.config_path.is_file():
        raise CheckpointError(f"{run.path} has no config.resolved.yaml; is it a largegraph run directory?")
    return run


def _say(line: str) -> None:
    print(line, flush=True)


def _quiet(line: str) -> None:
    pass


def heartbeat_interval() -> float:
    try:
        return max(0.1, float(os.environ.get("LARGEGRAPH_HEARTBEAT_S", "10")))
    except ValueError:
        raise ConfigError("LARGEGRAPH_HEARTBEAT_S must be a number of seconds") from None


@contextmanager
def _sigterm_requests_stop(flag: dict) -> Iterator[None]:
    """SIGTERM (preemption, orchestrator drain, torchrun shutting workers down) sets a flag the
    trainer honours at the next batch boundary: checkpoint, then exit 143."""
    def request(signum, frame):
        flag["stop"] = True
        if "trainer" in flag:
            flag["trainer"].stop_requested = True

    previous = signal.signal(signal.SIGTERM, request)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_training(config_path: str, overrides: list[str], *, run_dir: str | None = None,
                 device: str = "auto", resume: str = "auto", backend: str = "auto",
                 dist_timeout: float = distributed.DEFAULT_TIMEOUT_S) -> str:
    """Train the job a YAML file describes and return its one-line summary ("" on ranks > 0).

    Args:
        config_path: YAML job file.
        overrides: dotted ``key=value`` overrides.
        run_dir: output directory (default ``runs/<name>-<UTC time>``, or ``runs/<name>-<rdzv id>``
            under torchrun).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (under torchrun: GPU ``LOCAL_RANK``).
        resume: ``auto`` continues from the run directory's newest valid checkpoint; ``never`` refuses
            to reuse a directory that already holds checkpoints; any other value is the path of a
            checkpoint of this run directory to continue from. Workers that torchrun restarted
            always continue from the newest checkpoint.
        backend: torch.distributed backend under torchrun: ``auto`` (NCCL on GPU, gloo on CPU).
        dist_timeout: seconds a rank waits for its peers before failing instead of hanging.
    """
    flag: dict = {}
    with _sigterm_requests_stop(flag):
        cfg = load_config(config_path, overrides)
        env = distributed.from_env()
        dev = distributed.pick_device(env, device)
        distributed.init(env, dev, backend, dist_timeout)
        return _train(cfg, env, dev, run_dir, "auto" if env.restart_count else resume, flag)


def _open_run_dir(cfg: JobConfig, env: DistEnv, run_dir: str | None, resume: str) -> tuple[RunDir, bool]:
    """The run directory every rank agrees on, and whether it already holds checkpoints."""
    def choose() -> tuple[str, bool]:
        run = RunDir(run_dir or default_run_dir(cfg, launch_id=env.run_id))
        has_checkpoints = run.checkpoints.is_dir() and any(run.checkpoints.glob("step-*.json"))
        if has_checkpoints and resume == "never":
            raise ConfigError(f"{run.path} already holds checkpoints; pass --resume auto to continue it or "
                              f"choose another --run-dir")
        if resume not in ("auto", "never") and not run_dir:
            raise ConfigError("--resume PATH needs --run-dir: the checkpoint must belong to that run directory")
        return str(run.path), has_checkpoints

    path, has_checkpoints = distributed.on_main(choose, env)
    return RunDir(path), has_checkpoints


def _train(cfg: JobConfig, env: DistEnv, dev, run_dir: str | None, resume: str, flag: dict) -> str:
    say = _say if env.is_main else _quiet
    run, has_checkpoints = _open_run_dir(cfg, env, run_dir, resume)
    start = time.perf_counter()
    # Rank 0 first: it reports a missing or bad dataset once, and fills OGB's processed-graph cache
    # that the other ranks then read instead of all parsing the raw files at once.
    data = distributed.on_main(lambda: load_task_data(cfg), env, share=False)
    if not env.is_main:
        data = load_task_data(cfg)
    say(f"dataset {data.describe()} (loaded in {time.perf_counter() - start:.1f}s)")
    distributed.on_main(lambda: run.create(cfg), env, share=False)
    task = build_task(cfg, data)
    trainer = Trainer(cfg, task, run, dev, log=say, dist=env)
    flag["trainer"] = trainer
    trainer.stop_requested = flag.get("stop", False)
    if resume not in ("auto", "never"):
        trainer.resume(resume)
    elif has_checkpoints:
        trainer.resume()
    params = sum(p.numel() for p in trainer.model.parameters())
    workers = f" x {env.world_size} workers" if env.enabled else ""
    say(f"model {cfg.model.arch} ({params:,} parameters) on {dev}{workers}; run dir {run.path}")
    if env.is_main:
        with Heartbeat(run.heartbeat_path, heartbeat_interval(), lambda: trainer.step):
            summary = trainer.fit()
        say(summary_table(run, task.metric))
        return summary_line(summary, task.metric)
    trainer.fit()
    return ""
