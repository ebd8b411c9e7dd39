"""What a job's run directory says about it: progress from its metrics, signs of life, whether it
finished, the error line of its log.

The daemon learns everything about a running trainer from these files (never from the process
itself), so the same reading works for a local child, a torchrun group or, later, a remote pod.
Which file is which is :class:`largegraph.training.rundir.RunDir`'s to say.
"""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

from largegraph.core.errors import JobError
from largegraph.training.rundir import RunDir

METRICS_CAP = 64 << 20  # most bytes of a metrics file read at once: a run's own files are not trusted

# The last lines a failing trainer writes: our CLI's one-liner, a Python exception, a native crash.
_ERROR_LINE = re.compile(r"^(largegraph: error: .*|[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*"
                         r"|Fatal Python error: .*)$")


def read_progress(run_dir: str | Path) -> dict:
    """Progress columns for the job store from the run's metrics.

    Returns:
        ``{"epoch", "step", "metric", "last_metric", "best_metric", "resumes"}``; keys are left out
        when the file has nothing to say yet. Metrics are validation scores (``valid_<metric>``);
        every task's metric (accuracy, Hits@K, MRR) is better when higher.
    """
    records = read_metrics(run_dir)
    out: dict = {"resumes": sum(1 for r in records if r.get("kind") == "resume")}
    epochs = [r for r in records if r.get("kind") == "epoch"]
    if epochs:
        out["epoch"], out["step"] = epochs[-1].get("epoch"), epochs[-1].get("step")
    metric = next((r["metric"] for r in records if r.get("kind") == "final" and r.get("metric")), None)
    if metric is None:
        keys = [k for r in epochs for k in r if k.startswith("valid_") and r[k] is not None]
        metric = keys[-1].removeprefix("valid_") if keys else None
    if metric is not None:
        scores = [r[f"valid_{metric}"] for r in epochs if r.get(f"valid_{metric}") is not None]
        out["metric"] = metric
        if scores:
            out["last_metric"], out["best_metric"] = scores[-1], max(scores)
    return out


def metrics_stamp(run_dir: str | Path) -> tuple[float, int] | None:
    """``(mtime, size)`` of the run's metrics file, or None while there is none: reading the records
    again is only worth it when this changed."""
    try:
        stat = RunDir(run_dir).metrics_path.stat()
    except OSError:
        return None
    return stat.st_mtime, stat.st_size


def heartbeat_time(run_dir: str | Path) -> float | None:
    """When the trainer last wrote its heartbeat file (``{"pid", "time", "step"}``, rewritten by rank 0
    every ``LARGEGRAPH_HEARTBEAT_S`` seconds while it trains), or None if there is none."""
    try:
        times = [RunDir(run_dir).heartbeat_path.stat().st_mtime]
    except OSError:
        return None
    beat = read_heartbeat(run_dir)
    if isinstance(beat.get("time"), (int, float)):
        times.append(float(beat["time"]))
    return max(times)


def last_sign_of_life(run_dir: str | Path) -> float | None:
    """Newest time the trainer provably did something: its heartbeat, metrics or log output.

    Metrics and log writes count too, so a trainer that prints progress is never taken for frozen.
    """
    run = RunDir(run_dir)
    times = [t for t in (heartbeat_time(run.path),) if t is not None]
    for path in (run.metrics_path, run.log_path):
        try:
            times.append(path.stat().st_mtime)
        except OSError:
            pass
    return max(times) if times else None


def read_heartbeat(run_dir: str | Path) -> dict:
    """The heartbeat record, or {} if missing or half-written."""
    try:
        data = json.loads(read_bytes_from(RunDir(run_dir).heartbeat_path, 0, 4096) or b"null")
    except (OSError, ValueError, RecursionError, JobError):
        return {}
    return data if isinstance(data, dict) else {}


def finished_since(run_dir: str | Path, since: float) -> bool:
    """Whether the trainer wrote the run's summary (its last act) at or after time ``since``: the
    attempt that began then finished, whatever happened to its process afterwards."""
    try:
        return RunDir(run_dir).summary_path.stat().st_mtime >= since
    except OSError:
        return False


def error_line(log_path: str | Path, since: int = 0, window: int = 65536) -> str | None:
    """The most telling error line the trainer wrote after byte offset ``since`` of its log, if any."""
    log_path = Path(log_path)
    try:
        handle = open_run_file(log_path.parent, log_path.name)
    except (OSError, JobError):
        return None
    if handle is None:
        return None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        handle.seek(max(since, size - window))
        text = handle.read(window).decode("utf-8", "replace")
    # Progress bars redraw with carriage returns; treat them as line ends.
    lines = [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]
    for line in reversed(lines):
        if _ERROR_LINE.match(line):
            return line[:500]
    return None


class RunFileRefused(JobError):
    """A run's file that is not a plain file of its own directory (a link, a device, a pipe): the
    run wrote something it should not have, and nothing is read through it."""


def open_run_file(run_dir: str | Path, name: str) -> BinaryIO | None:
    """The one way a run's file is opened for reading on behalf of anyone but the run itself.

    ``name`` is a bare file name; the directory is resolved, the file itself is opened without
    following a link (``O_NOFOLLOW``) and without waiting on a pipe (``O_NONBLOCK``), and must be a
    regular file. Returns None if there is no such file yet.

    Raises:
        RunFileRefused: the name is a path, or the file is a link or not a regular file.
    """
    if not name or os.path.basename(name) != name or name in (".", ".."):
        raise RunFileRefused(f"{name!r} is not a file name of a run directory")
    path = os.path.join(os.path.realpath(run_dir), name)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:  # ELOOP: a link; anything else: not ours to read
        raise RunFileRefused(f"{name} of the run is not a regular file; refusing to read it") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RunFileRefused(f"{name} of the run is not a regular file; refusing to read it")
    return os.fdopen(fd, "rb")


def read_bytes_from(path: str | Path, offset: int, limit: int | None = None) -> bytes:
    """Up to ``limit`` bytes (all, if None) of the run's file ``path`` from byte ``offset``; empty if
    there is no file yet. How `logs` and the HTTP API read a log that a trainer is still appending to.

    Raises:
        RunFileRefused: see :func:`open_run_file`.
    """
    path = Path(path)
    handle = open_run_file(path.parent, path.name)
    if handle is None:
        return b""
    with handle:
        handle.seek(max(0, offset))
        return handle.read() if limit is None else handle.read(limit)


def run_file_size(path: str | Path) -> int:
    """The size of the run's file ``path`` (0 if none yet), through :func:`open_run_file`."""
    path = Path(path)
    handle = open_run_file(path.parent, path.name)
    if handle is None:
        return 0
    with handle:
        return os.fstat(handle.fileno()).st_size


def read_metrics(run_dir: str | Path, cap: int = METRICS_CAP) -> list[dict]:
    """The records of the run's metrics file, through :func:`open_run_file` and at most ``cap``
    bytes of it; lines that are cut short, too deeply nested or not records are skipped."""
    data = read_bytes_from(RunDir(run_dir).metrics_path, 0, cap)
    records = []
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue  # a line cut short by a crash: the rest of the file is still good
        if isinstance(record, dict):
            records.append(record)
    return records
