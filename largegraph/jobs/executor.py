"""How the job daemon starts, watches and stops attempts: the :class:`Executor` seam and
:class:`LocalExecutor`, which runs each attempt as a process tree on this machine.

The daemon decides *what* runs and *when* (claiming, slots, heartbeats, retries, judging an exit);
an executor only does process control. Another scheduler is one more implementation of
:class:`Executor` (:class:`largegraph.jobs.slurm.SlurmExecutor`); the daemon never asks which one
it holds.
"""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from largegraph.jobs import procs
from largegraph.jobs.schema import Job
from largegraph.jobs.workspace import Workspace

log = logging.getLogger(__name__)


def stamped(line: str) -> str:
    """A daemon log line as ``serve`` has always printed it: the wall-clock time, then the line."""
    return f"{time.strftime('%H:%M:%S')} {line}"


@dataclass(frozen=True)
class Attempt:
    """A started attempt, as the store records it (``Job.pid``, ``Job.pid_start``).

    ``id`` is the executor's name for the attempt (local: the leader's pid, which is also its process
    group; Slurm: the job id); ``since`` tells it from a later attempt that reuses the same id (local: the leader's
    start time, see :func:`procs.start_time`).
    """

    job_id: int
    id: int
    since: int | None


class Executor(Protocol):
    """Process control of a job's attempts, whatever runs them."""

    noun: str
    """What the daemon's log calls an attempt's id (``pid``, ``Slurm job``)."""
    uses_slots: bool
    """Whether attempts run on this machine, drawing on the daemon's CPU and GPU slots (False: a
    scheduler places them, and the daemon only bounds how many run at once)."""

    def refusal(self, job: Job) -> str | None:
        """Why ``job`` can never run here (failed while queued), or None."""

    def clear_strays(self, job: Job) -> None:
        """Kill whatever of ``job`` still runs (a lost attempt id, a worker that outlived its
        launcher) before a new attempt starts: a job never runs twice at once."""

    def start(self, job: Job, env: Mapping[str, str], log_path: Path, cwd: Path) -> Attempt:
        """Start the next attempt of ``job`` (``largegraph train`` of its frozen config in its run
        directory, ``--resume auto``) with ``env``, its output appended to ``log_path``.

        Raises:
            OSError: the attempt could not be started (a scheduler's refusal included).
        """

    def poll(self, attempt: Attempt) -> int | None:
        """The attempt's exit code, or None while it runs (or waits to run again)."""

    def running_since(self, attempt: Attempt) -> float | None:
        """When the attempt's processes last started (Unix seconds); None while it waits for a
        scheduler. A scheduler's requeue starts them again: silence is measured from there."""

    def terminate(self, attempt: Attempt) -> None:
        """Ask the attempt to stop (the trainer checkpoints and exits 143)."""

    def kill(self, attempt: Attempt) -> None:
        """Kill the attempt and everything it started, at once."""

    def release(self, attempt: Attempt) -> None:
        """Forget an attempt whose end the daemon recorded."""

    def adopt(self, job: Job) -> Attempt | None:
        """Take over the running ``job`` whose daemon died: its attempt, if it goes on under this
        daemon; None once nothing of it runs (the daemon then judges and requeues it)."""


def train_command(job: Job) -> list[str]:
    """One attempt of ``job`` on this machine: `train` of its frozen config in its run directory,
    resuming from the newest checkpoint there."""
    cmd = [sys.executable, "-m", "largegraph", "train", job.config_path, "--run-dir", job.run_dir,
           "--resume", "auto", "--device", "cuda" if job.slots_kind == "gpu" else "cpu"]
    if job.nproc > 1:
        cmd += ["--nproc", str(job.nproc)]  # `train` starts the workers through torchrun
    if job.max_restarts is not None:
        cmd += ["--max-restarts", str(job.max_restarts)]
    return cmd


class LocalExecutor:
    """Each attempt a process in a new session on this machine (its own process group, so a stop
    reaches torchrun's workers too), every process of it marked in its environment (``procs.MARK_ENV``).

    Only the process that started an attempt learns its exit code, so a dead daemon's attempts are
    stopped and requeued (:meth:`stop_orphan`), not adopted.
    """

    noun = "pid"
    uses_slots = True

    def __init__(self, workspace: Workspace, kill_grace: float):
        self.ws = workspace
        self.kill_grace = kill_grace
        self._procs: dict[int, subprocess.Popen] = {}  # by Attempt.id
        self._started: dict[int, float] = {}

    def refusal(self, job: Job) -> str | None:
        if job.nodes > 1:
            return (f"needs {job.nodes} nodes, but this daemon runs jobs on its own machine "
                    "(serve --executor slurm, or submit without --nodes)")
        return None

    def _mark(self, job_id: int) -> str:
        return self.ws.job_mark(job_id)

    def clear_strays(self, job: Job) -> None:
        """Kill any process of this job, or training in its run directory, before starting it.

        The store should already prevent this; this check is what makes "never twice at once" hold
        even if the store lost a pid (a daemon killed between starting a process and recording it) or
        a torchrun worker outlived its launcher. Checkpoints are written atomically, so SIGKILL is safe.
        """
        mark = self._mark(job.id)

        def strays() -> list[int]:
            return sorted(set(procs.marked(mark)) | set(procs.processes_with_args("train", "--run-dir", job.run_dir)))

        found = strays()
        if not found:
            return
        log.info(stamped(f"job {job.name}: killing leftover process(es) {found} before starting it again"))
        for pid in found:
            procs.signal_process(pid, signal.SIGKILL)
        procs.wait_gone(strays, 30.0)

    def start(self, job: Job, env: Mapping[str, str], log_path: Path, cwd: Path) -> Attempt:
        return self.spawn(job, train_command(job), env, log_path, cwd)

    def spawn(self, job: Job, command: Sequence[str], env: Mapping[str, str], log_path: Path,
              cwd: Path) -> Attempt:
        """Start ``command`` as an attempt of ``job`` in a new session with ``env`` plus the job's mark (inherited by every
        process the job starts); stdin from /dev/null, stdout and stderr appended to ``log_path``."""
        with open(log_path, "ab") as out:
            # A list of arguments, never a shell: names and paths cannot inject anything.
            proc = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=cwd,
                                    env={**env, procs.MARK_ENV: self._mark(job.id)})
        self._procs[proc.pid] = proc
        self._started[proc.pid] = time.time()
        return Attempt(job.id, proc.pid, procs.start_time(proc.pid))

    def poll(self, attempt: Attempt) -> int | None:
        return self._procs[attempt.id].poll()

    def running_since(self, attempt: Attempt) -> float | None:
        return self._started.get(attempt.id)

    def terminate(self, attempt: Attempt) -> None:
        """SIGTERM the leader only (torchrun forwards it to its workers); a data-loading worker that
        received it too would die under the trainer, turning a clean stop into a crash."""
        self._procs[attempt.id].send_signal(signal.SIGTERM)  # a no-op once reaped: never a reused pid

    def kill(self, attempt: Attempt) -> None:
        """SIGKILL the process group and every marked process (torchrun workers in their own sessions)."""
        procs.kill_job(attempt.id, self._mark(attempt.job_id))

    def release(self, attempt: Attempt) -> None:
        self._procs.pop(attempt.id, None)
        self._started.pop(attempt.id, None)

    def adopt(self, job: Job) -> None:
        """Stop the job (see :meth:`stop_orphan`): another daemon's child cannot be watched from here."""
        self.stop_orphan(job)
        return None

    def stop_orphan(self, job: Job) -> None:
        """Stop what is left of the running ``job`` whose daemon died: ask it to stop (so it
        checkpoints), kill what is left after the grace period; returns once nothing of it runs."""
        # SIGTERM first, so the trainer checkpoints; then nothing of the job may survive.
        leader = job.pid if procs.is_alive(job.pid, job.pid_start) else None
        procs.stop_job(leader, job.pid_start, self._mark(job.id), self.kill_grace)
        self.clear_strays(job)
