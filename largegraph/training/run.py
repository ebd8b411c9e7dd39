"""One training run's process control: run directory, resume choice, heartbeat, the fit.

What the run is made of is assembled by :mod:`largegraph.training.assembly` from the config and the
job's :class:`~largegraph.training.protocols.Backend`; which role a process of a distributed job
plays is the entry point's to dispatch. The same code runs a single process and every worker of a
torchrun job; the workers learn their rank from the environment (see
:mod:`largegraph.training.distributed`).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from typing import Callable

from largegraph.config import JobConfig, config_digest, dump_config_text, load_config
from largegraph.core import allocator, logs
from largegraph.core.device import precision_warning
from largegraph.core.errors import CheckpointError, ConfigError
from largegraph.core.signals import StopRequest
from largegraph.training import distributed
from largegraph.training.assembly import assemble
from largegraph.training.checkpoint import has_checkpoints
from largegraph.training.distributed import DistEnv
from largegraph.training.protocols import Backend
from largegraph.training.report import summary_line, summary_table
from largegraph.training.rundir import Heartbeat, RunDir, default_run_dir
from largegraph.training.trainer import Trainer

log = logging.getLogger(__name__)

BackendFor = Callable[[JobConfig], Backend]


def check_run_dir(run_dir: str) -> RunDir:
    """The run directory ``largegraph resume`` continues (it must hold its resolved config)."""
    return RunDir.existing(run_dir, RunDir.CONFIG, CheckpointError)


def resume_run(run_dir: str, *, backend_for: BackendFor, device: str = "auto", **options) -> str:
    """Continue the run in ``run_dir`` with its own resolved config (``largegraph resume``)."""
    run = check_run_dir(run_dir)
    return run_training(str(run.config_path), [], backend_for=backend_for, run_dir=str(run.path), device=device,
                        resume="auto", **options)


def heartbeat_interval() -> float:
    try:
        return max(0.1, float(os.environ.get("LARGEGRAPH_HEARTBEAT_S", "10")))
    except ValueError:
        raise ConfigError("LARGEGRAPH_HEARTBEAT_S must be a number of seconds") from None


def run_training(config_path: str, overrides: list[str], *, backend_for: BackendFor, run_dir: str | None = None,
                 device: str = "auto", resume: str = "auto", backend: str = "auto",
                 dist_timeout: float = distributed.DEFAULT_TIMEOUT_S, stop: StopRequest | None = None) -> str:
    """Train the job a YAML file describes and return its one-line summary ("" on ranks > 0).

    Args:
        config_path: YAML job file.
        overrides: dotted ``key=value`` overrides.
        backend_for: the job's backend for its config (:func:`largegraph.backends.backend_for`).
        run_dir: output directory (default ``runs/<name>-<UTC time>``, or ``runs/<name>-<rdzv id>``
            under torchrun).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (under torchrun: GPU ``LOCAL_RANK``).
        resume: ``auto`` continues from the run directory's newest valid checkpoint; ``never`` refuses
            to reuse a directory that already holds checkpoints; any other value is the path of a
            checkpoint of this run directory to continue from. Workers that torchrun restarted
            always continue from the newest checkpoint.
        backend: torch.distributed backend under torchrun: ``auto`` (NCCL on GPU, gloo on CPU).
        dist_timeout: seconds a rank waits for its peers before failing instead of hanging.
        stop: the SIGTERM request the caller installed (else one is installed here).
    """
    # SIGTERM from here on is a request to checkpoint and stop, however early it comes.
    with (contextlib.nullcontext(stop) if stop is not None else StopRequest()) as stop:
        cfg = load_config(config_path, overrides)
        env = distributed.from_env()
        logs.set_rank(env.rank)
        dev = distributed.pick_device(env, device)
        distributed.init(env, dev, backend, dist_timeout)
        return _train(cfg, backend_for(cfg), env, dev, run_dir, "auto" if env.restart_count else resume, stop)


def finished_summary(run: RunDir, cfg: JobConfig) -> dict | None:
    """The summary of the run in ``run`` if it finished the very job ``cfg`` describes, else None.

    Training it again would only repeat its final exact evaluation (minutes on a large graph) to
    print the line it already wrote; any change to the job (more epochs, say) trains on instead.
    """
    try:
        summary = json.loads(run.summary_path.read_text())
    except (OSError, ValueError):
        return None
    # The digest of the config the run finished with, not the run directory's config file: an
    # operator extending a run edits that file and resumes (summaries without one never match).
    same_job = isinstance(summary, dict) and summary.get("config_digest") == config_digest(dump_config_text(cfg))
    return summary if same_job and "metric" in summary else None


def _open_run_dir(cfg: JobConfig, env: DistEnv, run_dir: str | None,
                  resume: str) -> tuple[RunDir, bool, dict | None]:
    """The run directory every rank agrees on, whether it already holds checkpoints, and its summary
    if it is a finished run of this same job."""
    def choose() -> tuple[str, bool, dict | None]:
        run = RunDir(run_dir or default_run_dir(cfg, launch_id=env.run_id))
        held = has_checkpoints(run.checkpoints)
        if held and resume == "never":
            raise ConfigError(f"{run.path} already holds checkpoints; pass --resume auto to continue it or "
                              f"choose another --run-dir")
        if held and resume == "auto":
            run.refuse_other_job(cfg)
        if resume not in ("auto", "never") and not run_dir:
            raise ConfigError("--resume PATH needs --run-dir: the checkpoint must belong to that run directory")
        return str(run.path), held, finished_summary(run, cfg) if resume == "auto" else None

    path, held, finished = distributed.on_main(choose, env)
    return RunDir(path), held, finished


def _train(cfg: JobConfig, backend: Backend, env: DistEnv, dev, run_dir: str | None, resume: str,
           stop: StopRequest) -> str:
    run, held, finished = _open_run_dir(cfg, env, run_dir, resume)
    if finished is not None:
        metric = finished["metric"]
        log.info(f"{run.path} already finished this job; its result, from {run.SUMMARY}:")
        log.info(summary_table(run, metric))
        return summary_line(finished, metric) if env.is_main else ""
    start = time.perf_counter()
    # Rank 0 creates the run directory and its id before any other rank reads them.
    with allocator.system_defaults():  # one-off large arrays: kept blocks would only pile up
        data = backend.load_on_every_rank(cfg, env, lambda: run.create(cfg))
    log.info(f"dataset {data.describe()} (loaded in {time.perf_counter() - start:.1f}s)")
    backend.report(data, run, env)
    components = assemble(cfg, backend, data, run, dev, env)
    trainer = Trainer(cfg.train, components, stop=stop)
    if resume not in ("auto", "never"):
        trainer.resume(resume)
    elif not (held and trainer.resume()):
        trainer.start_fresh()
    params = sum(p.numel() for p in components.model.parameters())
    workers = f" x {env.world_size} workers" if env.enabled else ""
    log.info(f"model {cfg.model.arch} ({params:,} parameters) on {dev}{workers}; run dir {run.path}")
    slow = precision_warning(cfg.train.precision, dev)
    if slow:
        log.warning(slow)
    if not env.is_main:
        trainer.fit()
        return ""
    with Heartbeat(run.heartbeat_path, heartbeat_interval(), lambda: trainer.step):
        summary = trainer.fit()
    log.info(summary_table(run, components.task.metric))
    return summary_line(summary, components.task.metric)
