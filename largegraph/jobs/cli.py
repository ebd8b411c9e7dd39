"""``serve``, ``submit``, ``status``, ``logs`` and ``cancel``: the orchestrator's commands.

Every command reads and writes the workspace's job store directly, unless a server is named
(``--server``/``$LARGEGRAPH_SERVER``): then ``submit``, ``status``, ``logs`` and ``cancel`` go through
its HTTP API (:mod:`largegraph.server.client`) and print the same. User mistakes raise
``JobError``/``ConfigError``, which the CLI prints as one line (exit 2).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import BinaryIO, Callable

from largegraph.core.argtypes import non_negative_int, positive
from largegraph.core.errors import EXIT_OK, JobError
from largegraph.jobs.progress import read_bytes_from
from largegraph.jobs.store import FINAL_STATES, Job, JobStore
from largegraph.jobs.submission import SubmitOptions, queue_job
from largegraph.jobs.workspace import WORKSPACE_ENV, Workspace


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
    from largegraph.server.run import check_http_options

    check_http_options(args)  # refused before the store is touched or a job is started
    ws, store = _open(args, create=True)
    store.close()  # opened only to create (or upgrade) the store before the daemon registers in it
    daemon = JobDaemon(ws, options)
    if args.http:
        from largegraph.server.run import serve_with_http

        return serve_with_http(daemon, args)
    return daemon.serve()


def cmd_submit(args: argparse.Namespace) -> int:
    """Validate a job exactly as `train` would, freeze its resolved config in the workspace, queue it."""
    from largegraph.config import load_config

    options = SubmitOptions(name=args.name, priority=args.priority, retries=args.retries, nproc=args.nproc,
                            device=args.device, max_restarts=args.max_restarts)
    client = _remote(args)
    if client is not None:
        print(submitted_line(client.submit(args.config, args.overrides, options)))
        return EXIT_OK
    cfg = load_config(args.config, args.overrides)
    ws, store = _open(args, create=True)
    print(submitted_line(job_record(queue_job(ws, store, cfg, options))))
    _warn_if_unserved(store, ws)
    return EXIT_OK


def submitted_line(record: dict) -> str:
    """What `submit` prints for a queued job (a `job_record`)."""
    return (f"submitted {record['name']} (id {record['id']}, {record['task']}, priority {record['priority']}, "
            f"retries {record['max_retries']}); run dir {record['run_dir']}")


def _remote(args: argparse.Namespace):
    """The API client when a server is named (``--server`` or ``$LARGEGRAPH_SERVER``), else None."""
    from largegraph.server.client import client_for

    return client_for(args)


def _warn_if_unserved(store: JobStore, ws: Workspace) -> None:
    from largegraph.jobs.daemon import daemon_alive

    if not any(daemon_alive(d) for d in store.daemons()):
        print(f"largegraph: note: no daemon is serving {ws.root}; start one with "
              f"`largegraph serve --workspace {ws.root}`", file=sys.stderr)


def cmd_status(args: argparse.Namespace) -> int:
    """Print the jobs as a table, or as JSON records with --json."""
    client = _remote(args)
    if client is not None:
        print_status(client.jobs(args.jobs), args.json)
        return EXIT_OK
    ws, store = _open(args)
    jobs = [store.get(ref) for ref in args.jobs] if args.jobs else store.jobs()
    print_status([job_record(j) for j in jobs], args.json)
    if not args.json and any(j.state in ("queued", "running") for j in jobs):
        _warn_if_unserved(store, ws)
    return EXIT_OK


def print_status(records: list[dict], as_json: bool) -> None:
    """`status`'s output for these job records: the table and the last error lines, or JSON."""
    if as_json:
        print(json.dumps(records, indent=2))
        return
    print(format_table(records, time.time()))
    for record in records:
        if record["state"] in ("failed", "queued") and record["last_error"]:
            print(f"  {record['name']}: {record['last_error']}")


def cmd_logs(args: argparse.Namespace) -> int:
    """Print a job's log (every attempt's output); with --follow keep printing until the job reaches
    a final state."""
    from largegraph.training.rundir import RunDir  # not at import time: it pulls in the config schema

    client = _remote(args)
    if client is not None:
        return client.logs(args.job, args.follow, sys.stdout.buffer)
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
        no_output_yet(job.name, job.state)
    return EXIT_OK


def no_output_yet(name: str, state: str) -> None:
    """What `logs` says about a job that has written nothing yet."""
    print(f"largegraph: job {name} has no output yet (state {state})", file=sys.stderr)


def _copy_from(path: Path, offset: int, out: BinaryIO) -> int:
    """Copy what ``path`` holds past byte ``offset`` to ``out``; returns the new offset."""
    data = read_bytes_from(path, offset)
    out.write(data)
    out.flush()
    return offset + len(data)


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel queued jobs at once; ask the daemon to stop running ones (every process of the job)."""
    client = _remote(args)
    if client is not None:
        refresh = client.job
        records = [client.cancel(ref) for ref in args.jobs]
    else:
        _, store = _open(args)

        def refresh(ref: int) -> dict:
            return job_record(store.get(ref))

        records = [job_record(store.request_cancel(ref)) for ref in args.jobs]
    for record in records:
        print(f"cancelled {record['name']}" if record["state"] == "cancelled"
              else f"cancel requested for {record['name']} (running; its daemon stops all of its processes)")
    if args.wait:
        for record in _wait_final(records, refresh, args.timeout):
            print(f"{record['name']}: {record['state']}")
    return EXIT_OK


def cmd_fetch(args: argparse.Namespace) -> int:
    """Copy one file of a job's run directory (the trained model, predictions, curves, ...) to here."""
    from largegraph.core.fsutil import atomic_write_from
    from largegraph.training.rundir import RunDir

    check_shared_file(args.file)
    out = Path(args.out or args.file)
    if out.is_dir():
        out = out / args.file
    if out.exists() and not args.force:
        raise JobError(f"{out} exists; pass --force to replace it, or -o PATH to write elsewhere")
    if not out.parent.is_dir():
        raise JobError(f"cannot write {out}: directory {out.parent} does not exist")
    client = _remote(args)
    if client is not None:
        size = client.fetch(args.job, args.file, out)
    else:
        _, store = _open(args)
        job = store.get(args.job)
        source = RunDir(job.run_dir).path / args.file
        if not source.is_file():
            raise JobError(missing_file(job, args.file))
        with open(source, "rb") as handle:
            size = atomic_write_from(out, handle)
    print(f"wrote {out} ({size:,} bytes)")
    return EXIT_OK


def check_shared_file(name: str) -> None:
    """Refuse a name that is not one of the files a run hands out (no paths, ever)."""
    from largegraph.training.rundir import RunDir

    if name not in RunDir.SHARED_FILES:
        raise JobError(f"no file {name!r} to fetch: ask for one of {', '.join(sorted(RunDir.SHARED_FILES))}")


def missing_file(job: Job, name: str) -> str:
    """What `fetch` and the API say of a file the run has not written."""
    return (f"job {job.name} has no {name} yet (state {job.state}; a run writes model.pt, predictions and "
            "curves.png when it finishes)")


def _wait_final(records: list[dict], refresh: Callable[[int], dict], timeout: float) -> list[dict]:
    """Poll job records through ``refresh(id)`` until every one is final."""
    deadline = time.monotonic() + timeout
    while not all(r["state"] in FINAL_STATES for r in records):
        if time.monotonic() > deadline:
            raise JobError(f"jobs still running {timeout:g}s after the cancel request; "
                           "is `largegraph serve` running?")
        time.sleep(0.5)
        records = [refresh(r["id"]) for r in records]
    return records


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


def _state(record: dict, now: float) -> str:
    if record["state"] == "queued" and record["not_before"] > now:
        return f"queued (retry in {record['not_before'] - now:.0f}s)"
    if record["state"] == "running" and record["cancel_requested"]:
        return "cancelling"
    return record["state"]


def format_table(records: list[dict], now: float) -> str:
    """The `status` table of job records: id, name, task, state, attempt, epoch/step, best metric, age."""
    header = ("ID", "NAME", "TASK", "STATE", "ATTEMPT", "EPOCH/STEP", "BEST", "AGE")
    rows = [header]
    for j in records:
        progress = f"{j['epoch'] or 0}/{j['epochs'] or '?'} ({j['step'] or 0})" if j["epoch"] is not None else "-"
        best = f"{j['metric']} {j['best_metric']:.4f}" if j["best_metric"] is not None else "-"
        task = {"node_classification": "node", "link_prediction": "link"}.get(j["task"], j["task"])
        rows.append((str(j["id"]), j["name"], task, _state(j, now), str(j["attempt"]), progress, best,
                     _age(now - j["submitted_at"])))
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
