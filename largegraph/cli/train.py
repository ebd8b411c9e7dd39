"""``train``, ``resume`` and ``partition``: train here, or start the launcher a job needs.

A job that needs workers (``--nproc N``, or ``distributed.mode: distdgl``) is handed to a launcher
that resolves its config once and freezes it into the run directory; the processes it starts train
with that file. Everything else trains in this process.
"""
from __future__ import annotations

import argparse
import os
import sys

from largegraph.core.argtypes import non_negative_int, positive
from largegraph.core.errors import ConfigError


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


def cmd_partition(args: argparse.Namespace) -> int:
    from largegraph.config import load_config
    from largegraph.backends.distdgl.partition import partition_dataset

    cfg = load_config(args.config, args.overrides)
    partition_dataset(cfg, args.parts, args.out, method=args.method, force=args.force)
    return 0


def add_train_commands(sub) -> None:
    p = _job_command(sub, "train", "train a model from a YAML job file",
                     "Train from a YAML job file; trailing key=value pairs override it (e.g. model.hidden=256 "
                     "train.epochs=5).", "YAML job file, e.g. configs/node_sage_synth.yaml")
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


def _job_command(sub, name: str, summary: str, description: str, file_help: str) -> argparse.ArgumentParser:
    """A command that takes a job file and the dotted overrides after it (``train``, ``partition``)."""
    p = sub.add_parser(name, help=summary, description=description)
    p.add_argument("config", help=file_help)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    return p


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


def add_partition_command(sub) -> None:
    p = _job_command(sub, "partition", "cut a job's dataset into parts for DGL's distributed engine (METIS)",
                     "Partition the job's prepared dataset with dgl.distributed.partition_graph, carrying "
                     "features, labels and the split; reuses existing partitions unless --force.",
                     "YAML job file whose data section names the dataset")
    p.add_argument("--parts", type=positive(int), required=True, help="number of partitions (machines)")
    p.add_argument("--out", required=True, help="output folder; its name is the graph's name (DGL's graph_name)")
    p.add_argument("--method", choices=["metis", "random"], default="metis",
                   help="metis (default): fewer cut edges; random: balanced by chance")
    p.add_argument("--force", action="store_true", help="partition again even if --out holds these partitions")
    p.set_defaults(func=cmd_partition)
