"""Slurm's client commands as the job service uses them: ``sbatch``'s arguments for an attempt,
``scontrol show job``'s and ``squeue``'s answers read into typed records, and one-line errors.

Every command is a list of arguments, never a shell line: names, paths and flags reach Slurm as
they are. Only what Slurm's own commands print is parsed (no REST API, no accounting database:
``sacct`` is asked only where accounting exists).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from largegraph.core.errors import JobError
from largegraph.jobs.schema import Job

COMMAND_TIMEOUT_S = 60.0  # a controller slower than this is treated as unreachable for the moment
# States after which a job never runs again (PREEMPTED only when the job cannot be requeued; a
# requeued one goes back to PENDING under the same id).
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                          "DEADLINE", "PREEMPTED"})
_FIELD = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=(\S*)")


class SlurmUnreachable(JobError):
    """A Slurm command could not be run, or the controller did not answer."""


@dataclass(frozen=True)
class SlurmJob:
    """One job as ``scontrol show job`` shows it."""

    id: int
    name: str
    state: str                  # JobState: PENDING, RUNNING, COMPLETED, ...
    exit_code: int              # as a process's: the script's exit status, or -N for death by signal N
    start_time: float | None    # when it last started running (Unix seconds); None before
    restarts: int               # how often Slurm requeued it
    requeue: bool               # whether Slurm may requeue it (sbatch --requeue)
    reason: str = ""

    @property
    def is_final(self) -> bool:
        """Whether the job ended for good (a preempted job that Slurm will requeue has not)."""
        if self.state == "PREEMPTED":
            return not self.requeue
        return self.state in FINAL_STATES

    @property
    def is_running(self) -> bool:
        """Whether its processes run (or are being torn down); not while it waits in the queue."""
        return self.state in ("RUNNING", "COMPLETING", "SUSPENDED", "SIGNALING", "STAGE_OUT")


def fields(text: str) -> dict[str, str]:
    """``Key=value`` pairs of ``scontrol``'s one-line (``-o``) output. Values never hold spaces in
    the keys read here (ids, states, times, codes); a free-text value (Reason, Comment) is cut at its
    first space."""
    values: dict[str, str] = {}
    for m in _FIELD.finditer(text):
        values.setdefault(m.group(1), m.group(2))  # the first: a later Command= may hold "x=y" arguments
    return values


def slurm_time(value: str) -> float | None:
    """``2026-12-03T19:40:00`` (the controller's local time) -> Unix seconds; None for Unknown/None."""
    try:
        return time.mktime(time.strptime(value, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def exit_status(state: str, code: str) -> int:
    """Slurm's ``ExitCode=status:signal`` as a process's exit code (-N for death by signal N).

    A job that did not complete never reads as success, whatever its code says (a time limit or a
    node failure may leave ``0:0``).
    """
    status, _, signal = code.partition(":")
    try:
        status_n, signal_n = int(status), int(signal or 0)
    except ValueError:
        status_n, signal_n = 1, 0
    if signal_n:
        return -signal_n
    if state != "COMPLETED" and status_n == 0:
        return 1
    return status_n


def parse_job(text: str) -> SlurmJob | None:
    """The job in ``scontrol show job -o ID``'s output, or None if it names none."""
    values = fields(text)
    if "JobId" not in values or "JobState" not in values:
        return None
    state = values["JobState"]
    start = slurm_time(values.get("StartTime", ""))
    return SlurmJob(id=int(values["JobId"]), name=values.get("JobName", ""), state=state,
                    exit_code=exit_status(state, values.get("ExitCode", "0:0")),
                    start_time=start if state not in ("PENDING", "REQUEUED", "REQUEUE_HOLD") else None,
                    restarts=int(values.get("Restarts", "0") or 0), requeue=values.get("Requeue") == "1",
                    reason=values.get("Reason", ""))


def parse_ids(text: str) -> list[int]:
    """Job ids, one a line, as ``squeue -h -o %i`` or ``sbatch --parsable`` print them (the latter
    may add ``;cluster``)."""
    ids = []
    for line in text.splitlines():
        head = line.strip().split(";")[0]
        if head.isdigit():
            ids.append(int(head))
    return ids


def error_line(stderr: str, fallback: str) -> str:
    """Slurm's complaint in one line: its first ``error:`` line (the specific one; a summary such as
    ``Batch job submission failed`` follows it), else its first line (``unrecognized option``,
    ``allocation failure``), else ``fallback``."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    line = errors[0] if errors else (lines[0] if lines else fallback)
    return line.replace("sbatch: error: ", "").replace("scontrol: error: ", "")


def run(args: Sequence[str], env: Mapping[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a Slurm command; ``SlurmUnreachable`` if it is not installed or hangs."""
    if shutil.which(args[0], path=(env or {}).get("PATH")) is None:
        raise SlurmUnreachable(f"Slurm's {args[0]} is not installed here (or not on PATH)")
    try:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, env=env,
                              cwd=cwd, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SlurmUnreachable(f"{args[0]} got no answer from Slurm in {COMMAND_TIMEOUT_S:g}s") from None


def show_job(slurm_id: int) -> SlurmJob | None:
    """The job as the controller knows it; None once it forgot it (``MinJobAge`` after its end).

    Raises:
        SlurmUnreachable: the controller did not answer.
    """
    done = run(["scontrol", "show", "job", "-o", str(slurm_id)])
    if done.returncode != 0:
        if "Invalid job id" in done.stderr:
            return None
        raise SlurmUnreachable(error_line(done.stderr, f"scontrol exited with {done.returncode}"))
    return parse_job(done.stdout)


def accounted_exit(slurm_id: int) -> int | None:
    """The exit code ``sacct`` recorded for a job the controller forgot; None without accounting."""
    try:
        done = run(["sacct", "-n", "-X", "-P", "-j", str(slurm_id), "-o", "State,ExitCode"])
    except SlurmUnreachable:
        return None
    rows = [line.split("|") for line in done.stdout.splitlines() if line.count("|") == 1]
    if done.returncode != 0 or not rows:
        return None
    state, code = rows[-1]
    return exit_status(state.split()[0], code)


def queued_ids(name: str) -> list[int]:
    """Pending and running jobs named ``name``, oldest first."""
    done = run(["squeue", "-h", "--name", name, "-o", "%i"])
    if done.returncode != 0:
        raise SlurmUnreachable(error_line(done.stderr, f"squeue exited with {done.returncode}"))
    return sorted(parse_ids(done.stdout))


def cancel(slurm_id: int, *flags: str) -> None:
    """``scancel`` the job (errors ignored: it may have ended meanwhile)."""
    try:
        run(["scancel", *flags, str(slurm_id)])
    except SlurmUnreachable:
        pass


def resource_args(job: Job) -> list[str]:
    """The job's own requests, given on the command line so that they override the script's header:
    nodes, one task per node (torchrun starts the processes), its GPUs, a CPU per process.

    ``--oversubscribe`` only lifts the header's ``--exclusive`` (sbatch has no other way to undo it):
    the service's jobs share nodes by their CPUs, as the partition allows (with the default
    ``OverSubscribe=NO`` never two on one CPU). An operator who wants whole nodes passes
    ``--sbatch-flag=--exclusive``, which comes later and wins."""
    gpus = job.nproc if job.slots_kind == "gpu" else 0
    return [f"--nodes={job.nodes}", "--ntasks-per-node=1", f"--gpus-per-node={gpus}",
            f"--cpus-per-task={job.nproc}", "--oversubscribe"]


def choice_args(job: Job) -> list[str]:
    """What the submitter chose explicitly; last, so that they win over the operator's defaults."""
    args = []
    if job.partition:
        args.append(f"--partition={job.partition}")
    if job.time_limit:
        args.append(f"--time={job.time_limit}")
    return args


def sbatch_args(job: Job, name: str, log_path: Path, script: Path, operator_flags: Sequence[str]) -> list[str]:
    """``sbatch`` of one attempt of ``job`` through ``script`` (the project's ``train.sbatch``).

    Order matters, as sbatch takes the last of a repeated option: the script's header, then the
    job's resources, then the operator's flags (``serve --sbatch-flag``), then what the submitter
    chose (partition, time limit).
    """
    return ["sbatch", "--parsable", f"--job-name={name}", f"--output={log_path}", "--open-mode=append",
            *resource_args(job), *operator_flags, *choice_args(job),
            str(script), job.config_path, "--device", "cuda" if job.slots_kind == "gpu" else "cpu"]


def test_only(args: Sequence[str]) -> list[str]:
    """The same ``sbatch`` as a check that submits nothing: whether Slurm could ever place the job."""
    return [args[0], "--test-only", *(a for a in args[1:] if a != "--parsable")]


def script_env(job: Job, base: Mapping[str, str], python_bin: Path) -> dict[str, str]:
    """The environment sbatch exports to the script: the daemon's, plus where the run goes, how many
    processes per node, a rendezvous port of the job's own (two jobs may share a node) and a PATH on
    which ``python`` is the daemon's interpreter."""
    env = dict(base, RUN_DIR=job.run_dir, NPROC=str(job.nproc), RDZV_PORT=str(20000 + job.id % 20000),
               PATH=f"{python_bin}:{base.get('PATH', '/usr/bin:/bin')}")
    if job.max_restarts is not None:
        env["MAX_RESTARTS"] = str(job.max_restarts)
    return env

