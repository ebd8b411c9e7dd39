"""``serve``, ``submit``, ``status``, ``logs``, ``cancel`` and ``fetch``: the orchestrator's commands.

A front end above both the job service and its HTTP layer: each command asks a
:class:`largegraph.jobs.service.JobService` once, the workspace's own (:mod:`largegraph.jobs.local`)
or, when a server is named (``--server``/``$LARGEGRAPH_SERVER``), a ``serve --http`` through its API
(:mod:`largegraph.server.client`); both print the same. User mistakes raise
``JobError``/``ConfigError``, which the CLI prints as one line (exit 2).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

from largegraph.core.argtypes import non_negative_int, positive
from largegraph.core.errors import EXIT_OK, JobError
from largegraph.jobs.service import JobService
from largegraph.jobs.submission import SubmitOptions
from largegraph.jobs.views import (JobView, cancelled_line, check_shared_file, no_output_yet, printable, status_lines,
                                   submitted_line)
from largegraph.jobs.workspace import WORKSPACE_ENV, Workspace, open_store


def service_for(args: argparse.Namespace) -> JobService:
    """The API of the server named by ``--server`` or ``$LARGEGRAPH_SERVER``, else this workspace's store."""
    from largegraph.server.cli import named_server

    if named_server(args):
        from largegraph.server.client import client_for  # httpx is imported only to talk to a server

        return client_for(args)
    from largegraph.jobs.local import LocalJobService

    return LocalJobService(Workspace(args.workspace), poll_s=getattr(args, "interval", 0.5))


def _note(service: JobService) -> None:
    note = service.unserved_note()
    if note:
        print(note, file=sys.stderr)


# --- commands ----------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    """Run the daemon in the foreground until idle (with --exit-when-idle/--once) or SIGTERM/SIGINT."""
    from largegraph.jobs.daemon import JobDaemon, ServeOptions
    from largegraph.server.run import check_http_options

    options = ServeOptions(
        max_parallel=args.max_parallel, cpu_slots=args.cpu_slots, gpu_slots=args.gpu_slots,
        heartbeat_timeout=args.heartbeat_timeout, startup_timeout=args.startup_timeout,
        poll_interval=args.poll_interval, retry_backoff=args.retry_backoff, kill_grace=args.kill_grace,
        exit_when_idle=args.exit_when_idle, once=args.once)
    check_http_options(args)  # refused before the store is touched or a job is started
    ws = Workspace(args.workspace)
    executor = _executor(args, ws)  # Slurm is checked now, not at the first job
    open_store(ws, create=True).close()  # creates (or upgrades) the store before the daemon registers in it
    daemon = JobDaemon(ws, options, executor)
    if args.http:
        from largegraph.server.run import serve_with_http

        return serve_with_http(daemon, args)
    return daemon.serve()


def _executor(args: argparse.Namespace, ws: Workspace):
    """The executor ``serve --executor`` names (None: the daemon's default, local processes)."""
    if args.executor != "slurm":
        given = [flag for flag, value in (("--sbatch-flag", args.sbatch_flag), ("--slurm-script", args.slurm_script))
                 if value]
        if given:
            raise JobError(f"{', '.join(given)}: only used with --executor slurm; add it or leave them out")
        return None
    from largegraph.jobs.slurm import SCRIPT, SlurmExecutor, SlurmOptions, check_slurm

    options = SlurmOptions(script=Path(args.slurm_script or SCRIPT).absolute(), sbatch_flags=tuple(args.sbatch_flag))
    check_slurm(options)
    return SlurmExecutor(ws, options)


def cmd_submit(args: argparse.Namespace) -> int:
    """Validate a job exactly as `train` would, freeze its resolved config in the workspace, queue it."""
    options = SubmitOptions(name=args.name, priority=args.priority, retries=args.retries, nproc=args.nproc,
                            device=args.device, max_restarts=args.max_restarts, nodes=args.nodes,
                            partition=args.partition, time_limit=args.time_limit)
    service = service_for(args)
    print(submitted_line(service.submit(args.config, args.overrides, options)))
    _note(service)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Print the jobs as a table, or as JSON records with --json."""
    service = service_for(args)
    jobs = service.jobs(args.jobs)
    if args.json:
        print(json.dumps([j.model_dump() for j in jobs], indent=2))
        return EXIT_OK
    print("\n".join(status_lines(jobs, time.time())))
    if any(j.state in ("queued", "running") for j in jobs):
        _note(service)
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    """Print a job's log (every attempt's output); with --follow keep printing until the job reaches
    a final state."""
    service = service_for(args)
    if service.logs(args.job, sys.stdout.buffer, args.follow) == 0 and not args.follow:
        job = service.job(args.job)
        if not job.is_final:
            print(no_output_yet(job.name, job.state), file=sys.stderr)
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel queued jobs at once; ask the daemon to stop running ones (every process of the job)."""
    service = service_for(args)
    jobs = [service.cancel(ref) for ref in args.jobs]
    for job in jobs:
        print(cancelled_line(job))
    if args.wait:
        for job in _wait_final(jobs, service.job, args.timeout):
            print(printable(f"{job.name}: {job.state}"))
    return EXIT_OK


def cmd_fetch(args: argparse.Namespace) -> int:
    """Copy one file of a job's run directory (the trained model, predictions, curves, ...) to here."""
    check_shared_file(args.file)
    out = Path(args.out or args.file)
    if out.is_dir():
        out = out / args.file
    if out.exists() and not args.force:
        raise JobError(f"{out} exists; pass --force to replace it, or -o PATH to write elsewhere")
    if not out.parent.is_dir():
        raise JobError(f"cannot write {out}: directory {out.parent} does not exist")
    size = service_for(args).fetch(args.job, args.file, out)
    print(f"wrote {out} ({size:,} bytes)")
    return EXIT_OK


def _wait_final(jobs: list[JobView], refresh: Callable[[int], JobView], timeout: float) -> list[JobView]:
    """Poll the jobs through ``refresh(id)`` until every one is final."""
    deadline = time.monotonic() + timeout
    while not all(j.is_final for j in jobs):
        if time.monotonic() > deadline:
            raise JobError(f"jobs still running {timeout:g}s after the cancel request; "
                           "is `largegraph serve` running?")
        time.sleep(0.5)
        jobs = [refresh(j.id) for j in jobs]
    return jobs


# --- parser ------------------------------------------------------------------------------------------
def add_job_commands(sub, parser_class: type[argparse.ArgumentParser]) -> None:
    """Register the orchestrator's subcommands on the main parser's subparsers."""
    common = parser_class(add_help=False)
    common.add_argument("--workspace", metavar="DIR",
                        help=f"job store and run directories (default ${WORKSPACE_ENV}, else ./lg-workspace)")

    from largegraph.server.cli import add_client_options, add_http_options, add_token_command

    remote = parser_class(add_help=False)
    add_client_options(remote)

    def command(name: str, func: Callable[[argparse.Namespace], int], over_http: bool = True,
                **kwargs) -> argparse.ArgumentParser:
        # Every job command works on a workspace, hence the shared --workspace; those that a
        # server can answer also take --server.
        p = sub.add_parser(name, parents=[common, remote] if over_http else [common], **kwargs)
        p.set_defaults(func=func)
        return p

    serve = command(
        "serve", cmd_serve, over_http=False, help="run the job daemon: claims, runs, retries, resumes jobs",
        description="Run queued jobs of a workspace. SIGTERM/Ctrl-C drains: running jobs checkpoint and stop, "
                    "and resume when a daemon serves the workspace again. With --http, also serve the "
                    "HTTP API and the status page.")
    _add_serve_options(serve)
    add_http_options(serve)
    add_token_command(sub, common, parser_class)
    _add_submit_options(command(
        "submit", cmd_submit, help="queue a training job (validated like `train`)",
        description="Queue a YAML job; trailing key=value pairs override it, as for `train`."))

    p = command("status", cmd_status, help="list jobs: state, attempt, progress, best metric")
    p.add_argument("jobs", nargs="*", metavar="JOB", help="names or ids (default: all jobs)")
    p.add_argument("--json", action="store_true", help="machine-readable records")

    p = command("logs", cmd_logs, help="print a job's output (the trainer's log in its run directory)")
    p.add_argument("job", metavar="JOB", help="name or id")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    p.add_argument("--interval", type=positive(float), default=0.5, help=argparse.SUPPRESS)

    p = command("cancel", cmd_cancel, help="cancel jobs (a running one: SIGTERM, then SIGKILL to all its processes)")
    p.add_argument("jobs", nargs="+", metavar="JOB", help="names or ids")
    p.add_argument("--wait", action="store_true", help="wait until the daemon has stopped them")
    p.add_argument("--timeout", type=positive(float), default=120.0, metavar="S",
                   help="with --wait: give up after this long")

    p = command("fetch", cmd_fetch, help="copy a file of a job's run (model.pt, predictions, curves) to here")
    p.add_argument("job", metavar="JOB", help="name or id")
    p.add_argument("file", metavar="FILE", help="model.pt, predictions.pt, curves.png, ... (a wrong name lists them all)")
    p.add_argument("-o", "--out", metavar="PATH", help="where to write it (a directory or a file; default ./FILE)")
    p.add_argument("--force", action="store_true", help="replace PATH if it exists")


def _add_serve_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-parallel", type=positive(int), default=1, metavar="N",
                   help="jobs running at once (default 1)")
    p.add_argument("--cpu-slots", type=non_negative_int, metavar="N",
                   help="CPU slots (default: CPU count); a CPU job with --nproc N takes N")
    p.add_argument("--gpu-slots", type=non_negative_int, metavar="N",
                   help="GPU slots (default: visible CUDA devices); a CUDA job with --nproc N takes N GPUs")
    seconds = (  # (flag, default, help): every limit of the daemon's loop, in seconds
        ("--heartbeat-timeout", 300.0, "seconds without a heartbeat, metrics or log output before a training job "
                                       "is killed and retried (default 300)"),
        ("--startup-timeout", 3600.0, "the same limit before a job's first heartbeat: imports and dataset loading "
                                      "(default 3600)"),
        ("--poll-interval", 1.0, "seconds between checks (default 1)"),
        ("--retry-backoff", 10.0, "delay before the first retry, doubling per failure (default 10 s)"),
        ("--kill-grace", 30.0, "seconds between SIGTERM and SIGKILL when cancelling, draining or stopping orphans "
                               "(default 30)"),
    )
    for flag, default, text in seconds:
        p.add_argument(flag, type=positive(float), default=default, metavar="S", help=text)
    slurm = p.add_argument_group("where jobs run")
    slurm.add_argument("--executor", choices=["local", "slurm"], default="local",
                       help="local: processes on this machine (default); slurm: each attempt an sbatch of "
                            "launch/slurm/train.sbatch (docs/cluster.md)")
    slurm.add_argument("--sbatch-flag", action="append", default=[], metavar="FLAG",
                       help="with --executor slurm: an extra sbatch flag for every job, e.g. "
                            "--sbatch-flag=--account=ml (repeatable; checked with sbatch --test-only at start)")
    slurm.add_argument("--slurm-script", metavar="FILE",
                       help="with --executor slurm: the batch script (default launch/slurm/train.sbatch)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--exit-when-idle", action="store_true", help="exit once no job is queued or running")
    group.add_argument("--once", action="store_true", help="start what fits now, wait for those attempts, exit")


def _add_submit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML job file, e.g. configs/node_sage_synth.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    p.add_argument("--name", help="job name (default: the config's name plus the job id)")
    p.add_argument("--priority", type=int, default=0, metavar="P", help="higher runs first (default 0)")
    p.add_argument("--retries", type=non_negative_int, default=2, metavar="R",
                   help="retries after a crash (default 2)")
    p.add_argument("--nproc", type=positive(int), default=1, metavar="N",
                   help="training processes (torchrun when > 1)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="cpu (default) or cuda (takes --nproc GPU slots; the daemon picks the GPUs)")
    p.add_argument("--max-restarts", type=non_negative_int, metavar="R", help="torchrun restarts inside one attempt")
    cluster = p.add_argument_group("on a cluster (serve --executor slurm)")
    cluster.add_argument("--nodes", type=positive(int), default=1, metavar="N",
                         help="machines, each running --nproc processes (default 1)")
    cluster.add_argument("--partition", metavar="NAME", help="Slurm partition (default: the cluster's)")
    cluster.add_argument("--time-limit", metavar="TIME",
                         help="Slurm time limit per run, e.g. 90 (minutes) or 1:30:00; the job checkpoints and is "
                              "requeued before it")
