"""``serve``, ``submit``, ``status``, ``logs`` and ``cancel``: the orchestrator's commands.

Every command reads and writes the workspace's job store directly (no server to talk to on one
machine). User mistakes raise ``JobError``/``ConfigError``, which the CLI prints as one line (exit 2).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable

from largegraph.argtypes import non_negative_int, positive
from largegraph.errors import EXIT_OK, JobError
from largegraph.jobs.store import Job, JobStore
from largegraph.jobs.workspace import WORKSPACE_ENV, Workspace, check_job_name, write_job_config

if TYPE_CHECKING:  # the config schema (pydantic) is imported only by the commands that need it
    from largegraph.config import JobConfig


def _open(args: argparse.Namespace, create: bool = False) -> tuple[Workspace, JobStore]:
    ws = Workspace(args.workspace)
    if create:
        ws.create()
    else:
        ws.require()
    return ws, JobStore(ws.db_path)


# --- commands ----------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    """Run the daemon in the foreground until idle (with --exit-when-idle/--once) or SIGTERM/SIGINT."""
    from largegraph.jobs.daemon import JobDaemon, ServeOptions

    options = ServeOptions(
        max_parallel=args.max_parallel, cpu_slots=args.cpu_slots, gpu_slots=args.gpu_slots,
        heartbeat_timeout=args.heartbeat_timeout, startup_timeout=args.startup_timeout,
        poll_interval=args.poll_interval, retry_backoff=args.retry_backoff, kill_grace=args.kill_grace,
        exit_when_idle=args.exit_when_idle, once=args.once)
    ws, store = _open(args, create=True)
    store.close()  # opened only to create (or upgrade) the store before the daemon registers in it
    return JobDaemon(ws, options).serve()


def cmd_submit(args: argparse.Namespace) -> int:
    """Validate a job exactly as `train` would, freeze its resolved config in the workspace, queue it."""
    from largegraph.config import load_config

    if args.name is not None:
        check_job_name(args.name)
    cfg = load_config(args.config, args.overrides)
    # The daemon trains from the workspace, not from where `submit` ran: pin the dataset path.
    cfg.data.root = str(Path(cfg.data.root).expanduser().absolute())
    ws, store = _open(args, create=True)
    text = _resolved_config(cfg, ws)
    job = store.submit(
        name=args.name, default_base=cfg.name, task=cfg.task, config=text,
        epochs=cfg.train.epochs, priority=args.priority, max_retries=args.retries, nproc=args.nproc,
        device=args.device, max_restarts=args.max_restarts,
        paths=lambda name, job_id: (ws.job_config(job_id), ws.run_dir(name, job_id)))
    try:
        write_job_config(job.config_path, text)
    except OSError as exc:
        # The store holds the config too, and a daemon writes the file again before it starts the job.
        raise JobError(f"job {job.name} (id {job.id}) is queued, but its config could not be written to "
                       f"{job.config_path}: {exc.strerror}") from None
    print(f"submitted {job.name} (id {job.id}, {cfg.task}, priority {job.priority}, retries {job.max_retries}); "
          f"run dir {job.run_dir}")
    _warn_if_unserved(store, ws)
    return EXIT_OK


def _resolved_config(cfg: "JobConfig", ws: Workspace) -> str:
    """The config as the daemon will hand it to `train`, in the words of ``dump_config`` (the one
    writer of resolved configs). Written into the workspace first: a workspace that cannot take the
    file refuses the job before the store records it."""
    from largegraph.config import dump_config

    staged = ws.staging_path()
    try:
        dump_config(cfg, staged)
        return staged.read_text()
    except OSError as exc:
        raise JobError(f"cannot write to workspace {ws.root}: {exc.strerror}") from None
    finally:
        staged.unlink(missing_ok=True)


def _warn_if_unserved(store: JobStore, ws: Workspace) -> None:
    from largegraph.jobs.daemon import daemon_alive

    if not any(daemon_alive(d) for d in store.daemons()):
        print(f"largegraph: note: no daemon is serving {ws.root}; start one with "
              f"`largegraph serve --workspace {ws.root}`", file=sys.stderr)


def cmd_status(args: argparse.Namespace) -> int:
    """Print the jobs as a table, or as JSON records with --json."""
    ws, store = _open(args)
    jobs = [store.get(ref) for ref in args.jobs] if args.jobs else store.jobs()
    if args.json:
        print(json.dumps([job_record(j) for j in jobs], indent=2))
        return EXIT_OK
    print(format_table(jobs, time.time()))
    for job in jobs:
        if job.state in ("failed", "queued") and job.last_error:
            print(f"  {job.name}: {job.last_error}")
    if any(j.state in ("queued", "running") for j in jobs):
        _warn_if_unserved(store, ws)
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    """Print a job's log (every attempt's output); with --follow keep printing until the job reaches
    a final state."""
    from largegraph.rundir import RunDir  # not at import time: it pulls in the config schema

    _, store = _open(args)
    job = store.get(args.job)
    path = RunDir(job.run_dir).log_path
    out = sys.stdout.buffer
    offset = 0
    while True:
        offset = _copy_from(path, offset, out)
        if not args.follow or job.is_final:
            break
        time.sleep(args.interval)
        job = store.get(job.id)
        if job.is_final:
            offset = _copy_from(path, offset, out)  # what the job wrote before it ended
            break
    if offset == 0 and not job.is_final and not args.follow:
        print(f"largegraph: job {job.name} has no output yet (state {job.state})", file=sys.stderr)
    return EXIT_OK


def _copy_from(path: Path, offset: int, out: BinaryIO) -> int:
    """Copy what ``path`` holds past byte ``offset`` to ``out``; returns the new offset."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return offset
    out.write(data)
    out.flush()
    return offset + len(data)


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel queued jobs at once; ask the daemon to stop running ones (every process of the job)."""
    _, store = _open(args)
    jobs = [store.request_cancel(ref) for ref in args.jobs]
    for job in jobs:
        print(f"cancelled {job.name}" if job.state == "cancelled"
              else f"cancel requested for {job.name} (running; its daemon stops all of its processes)")
    deadline = time.monotonic() + args.timeout
    while args.wait and not all(j.is_final for j in jobs):
        if time.monotonic() > deadline:
            raise JobError(f"jobs still running {args.timeout:g}s after the cancel request; "
                           "is `largegraph serve` running?")
        time.sleep(0.5)
        jobs = [store.get(j.id) for j in jobs]
    if args.wait:
        for job in jobs:
            print(f"{job.name}: {job.state}")
    return EXIT_OK


# --- output ------------------------------------------------------------------------------------------
def job_record(job: Job) -> dict:
    """The machine-readable record `status --json` prints for one job."""
    return {
        "id": job.id, "name": job.name, "task": job.task, "state": job.state, "attempt": job.attempt,
        "max_retries": job.max_retries, "failures": job.failures, "priority": job.priority, "nproc": job.nproc,
        "device": job.device, "run_dir": job.run_dir, "epoch": job.epoch, "epochs": job.epochs, "step": job.step,
        "metric": job.metric, "last_metric": job.last_metric, "best_metric": job.best_metric,
        "resumes": job.resumes, "pid": job.pid, "exit_code": job.exit_code, "last_error": job.last_error,
        "cancel_requested": bool(job.cancel_requested), "submitted_at": job.submitted_at,
        "started_at": job.started_at, "finished_at": job.finished_at, "heartbeat_at": job.heartbeat_at,
        "not_before": job.not_before,
    }


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _state(job: Job, now: float) -> str:
    if job.state == "queued" and job.not_before > now:
        return f"queued (retry in {job.not_before - now:.0f}s)"
    if job.state == "running" and job.cancel_requested:
        return "cancelling"
    return job.state


def format_table(jobs: list[Job], now: float) -> str:
    """The `status` table: id, name, task, state, attempt, epoch/step, best metric, age."""
    header = ("ID", "NAME", "TASK", "STATE", "ATTEMPT", "EPOCH/STEP", "BEST", "AGE")
    rows = [header]
    for j in jobs:
        progress = f"{j.epoch or 0}/{j.epochs or '?'} ({j.step or 0})" if j.epoch is not None else "-"
        best = f"{j.metric} {j.best_metric:.4f}" if j.best_metric is not None else "-"
        task = {"node_classification": "node", "link_prediction": "link"}.get(j.task, j.task)
        rows.append((str(j.id), j.name, task, _state(j, now), str(j.attempt), progress, best,
                     _age(now - j.submitted_at)))
    if len(rows) == 1:
        return "no jobs"
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


# --- parser ------------------------------------------------------------------------------------------
def add_job_commands(sub, parser_class: type[argparse.ArgumentParser]) -> None:
    """Register the orchestrator's subcommands on the main parser's subparsers."""
    common = parser_class(add_help=False)
    common.add_argument("--workspace", metavar="DIR",
                        help=f"job store and run directories (default ${WORKSPACE_ENV}, else ./lg-workspace)")

    def command(name: str, func: Callable[[argparse.Namespace], int], **kwargs) -> argparse.ArgumentParser:
        # Every job command works on a workspace, hence the shared --workspace.
        p = sub.add_parser(name, parents=[common], **kwargs)
        p.set_defaults(func=func)
        return p

    _add_serve_options(command(
        "serve", cmd_serve, help="run the job daemon: claims, runs, retries, resumes jobs",
        description="Run queued jobs of a workspace. SIGTERM/Ctrl-C drains: running jobs checkpoint and stop, "
                    "and resume when a daemon serves the workspace again."))
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


def _add_serve_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-parallel", type=positive(int), default=1, metavar="N",
                   help="jobs running at once (default 1)")
    p.add_argument("--cpu-slots", type=non_negative_int, metavar="N",
                   help="CPU slots (default: CPU count); a CPU job with --nproc N takes N")
    p.add_argument("--gpu-slots", type=non_negative_int, metavar="N",
                   help="GPU slots (default: visible CUDA devices); a CUDA job with --nproc N takes N GPUs")
    p.add_argument("--heartbeat-timeout", type=positive(float), default=300.0, metavar="S",
                   help="seconds without a heartbeat, metrics or log output before a training job is killed "
                        "and retried (default 300)")
    p.add_argument("--startup-timeout", type=positive(float), default=3600.0, metavar="S",
                   help="the same limit before a job's first heartbeat: imports and dataset loading (default 3600)")
    p.add_argument("--poll-interval", type=positive(float), default=1.0, metavar="S",
                   help="seconds between checks (default 1)")
    p.add_argument("--retry-backoff", type=positive(float), default=10.0, metavar="S",
                   help="delay before the first retry, doubling per failure (default 10 s)")
    p.add_argument("--kill-grace", type=positive(float), default=30.0, metavar="S",
                   help="seconds between SIGTERM and SIGKILL when cancelling, draining or stopping orphans "
                        "(default 30)")
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
