"""The job service on Slurm: :class:`SlurmExecutor` runs each attempt as an ``sbatch`` of the
project's ``launch/slurm/train.sbatch``.

The daemon keeps deciding what runs and when; Slurm decides where. An attempt is one Slurm job
(the attempt's id is its job id): the script's time-limit and preemption handling requeue it under
the same id, and its trainer resumes from the run directory's newest checkpoint, so a requeue is a
new run of the same attempt, never a failure. Its state comes from ``scontrol show job`` (``sacct``
once the controller forgot it, where accounting exists), its output lands in the run directory's
log through ``sbatch --output``, ``cancel`` is ``scancel``. Slurm keeps its jobs when the daemon
dies, so a new daemon adopts them (:meth:`SlurmExecutor.adopt`) instead of starting them again.

What a job may ask of Slurm (nodes, processes per node, GPUs, partition, time limit) comes from
``submit``; extra sbatch flags only from the operator (``serve --sbatch-flag``), never from an API
caller.
"""
from __future__ import annotations

import hashlib
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from largegraph.core.errors import JobError
from largegraph.jobs import slurmctl
from largegraph.jobs.executor import Attempt, stamped
from largegraph.jobs.schema import Job
from largegraph.jobs.slurmctl import SlurmJob, SlurmUnreachable
from largegraph.jobs.workspace import Workspace

log = logging.getLogger(__name__)

SCRIPT = Path(__file__).resolve().parents[2] / "launch" / "slurm" / "train.sbatch"
LOST_EXIT = 1  # the exit code of a job Slurm forgot without accounting: judged by its run directory


@dataclass(frozen=True)
class SlurmOptions:
    """What the operator of ``serve --executor slurm`` decides (never a job's submitter)."""

    script: Path = SCRIPT
    sbatch_flags: tuple[str, ...] = ()
    state_ttl_s: float = 0.5   # a job's state, once read, serves every question of this long
    stray_wait_s: float = 120.0  # how long a cancelled leftover job may take to leave the queue


@dataclass
class _Seen:
    job: SlurmJob | None
    at: float


class SlurmExecutor:
    """Each attempt a Slurm batch job of ``train.sbatch``, named after the job and its workspace so
    that a new daemon finds it even if the dead one never recorded its id."""

    noun = "Slurm job"
    uses_slots = False

    def __init__(self, workspace: Workspace, options: SlurmOptions = SlurmOptions()):
        self.ws = workspace
        self.opts = options
        self._seen: dict[int, _Seen] = {}  # by Slurm job id
        self._restarts: dict[int, int] = {}
        self._unreachable_logged = 0.0

    def slurm_name(self, job: Job) -> str:
        """The Slurm job name of ``job``'s attempts: unique to the job and its workspace."""
        digest = hashlib.sha256(self.ws.job_mark(job.id).encode()).hexdigest()[:12]
        return f"largegraph-{job.id}-{digest}"

    # --- the Executor protocol ----------------------------------------------------------------------
    def refusal(self, job: Job) -> str | None:
        return None  # Slurm itself refuses what it cannot place, at sbatch

    def clear_strays(self, job: Job) -> None:
        """Cancel any Slurm job of this job still queued or running (one started by a daemon that
        died before recording it), and wait until Slurm lists none."""
        name = self.slurm_name(job)
        try:
            found = slurmctl.queued_ids(name)
            if not found:
                return
            log.info(stamped(f"job {job.name}: cancelling leftover Slurm job(s) {found} before starting it again"))
            for slurm_id in found:
                slurmctl.cancel(slurm_id)
            deadline = time.monotonic() + self.opts.stray_wait_s
            while slurmctl.queued_ids(name) and time.monotonic() < deadline:
                time.sleep(0.5)
        except SlurmUnreachable as exc:
            raise OSError(str(exc)) from None  # the attempt cannot start: Slurm does not answer

    def start(self, job: Job, env: Mapping[str, str], log_path: Path, cwd: Path) -> Attempt:
        """``sbatch`` the attempt from ``cwd`` (the script runs there), its output appended to ``log_path``.

        Raises:
            OSError: sbatch refused the job (its one-line reason) or Slurm is unreachable.
        """
        args = slurmctl.sbatch_args(job, self.slurm_name(job), log_path, self.opts.script, self.opts.sbatch_flags)
        script_env = slurmctl.script_env(job, env, Path(sys.executable).parent)
        try:
            # sbatch queues a job that asks for more than the cluster has (more nodes, a longer time
            # than the partition allows), where it would wait for ever; --test-only says so now.
            probe = slurmctl.run(slurmctl.test_only(args), env=script_env, cwd=cwd)
            done = probe if probe.returncode != 0 else slurmctl.run(args, env=script_env, cwd=cwd)
        except SlurmUnreachable as exc:
            raise OSError(str(exc)) from None
        ids = slurmctl.parse_ids(done.stdout)
        if done.returncode != 0 or not ids:
            raise OSError(slurmctl.error_line(done.stderr, f"sbatch exited with {done.returncode}"))
        return Attempt(job.id, ids[0], None)

    def poll(self, attempt: Attempt) -> int | None:
        try:
            seen = self._look(attempt.id)
        except SlurmUnreachable as exc:
            self._unreachable(exc)
            return None  # its state is unknown, not ended: ask again next time
        if seen is None:
            code = slurmctl.accounted_exit(attempt.id)
            return LOST_EXIT if code is None else code
        self._note_requeue(attempt, seen)
        return seen.exit_code if seen.is_final else None

    def running_since(self, attempt: Attempt) -> float | None:
        try:
            seen = self._look(attempt.id)
        except SlurmUnreachable:
            return None  # nothing to measure silence from while the controller does not answer
        return seen.start_time if seen is not None and seen.is_running else None

    def terminate(self, attempt: Attempt) -> None:
        """``scancel``: Slurm sends SIGTERM to every process of the job (the trainers checkpoint and
        exit), and SIGKILL after its ``KillWait``; a cancelled job is never requeued."""
        slurmctl.cancel(attempt.id)
        self._forget(attempt.id)

    def kill(self, attempt: Attempt) -> None:
        """SIGKILL the batch script and every step at once, then cancel what is left (a pending job)."""
        slurmctl.cancel(attempt.id, "--signal=KILL", "--full")
        slurmctl.cancel(attempt.id)
        self._forget(attempt.id)

    def release(self, attempt: Attempt) -> None:
        self._forget(attempt.id)
        self._restarts.pop(attempt.id, None)

    def adopt(self, job: Job) -> Attempt | None:
        """Take over the Slurm job of a dead daemon's attempt: by its recorded id, else (the daemon
        died between sbatch and recording it) by its name. None if Slurm holds none (never
        submitted, or ended and forgotten): the daemon then judges the run directory."""
        name = self.slurm_name(job)
        try:
            candidates = [job.pid] if job.pid else slurmctl.queued_ids(name)
            found = [s for s in (slurmctl.show_job(i) for i in candidates) if s is not None and s.name == name]
        except SlurmUnreachable as exc:
            self._unreachable(exc)
            # Watched by its recorded id until Slurm answers (poll waits for it); an unrecorded one
            # is requeued, and its next start finds and cancels the copy first (clear_strays).
            return Attempt(job.id, job.pid, None) if job.pid else None
        if not found:
            return None
        newest = found[-1]
        for extra in found[:-1]:  # never two copies of a job
            slurmctl.cancel(extra.id)
        self._restarts[newest.id] = newest.restarts
        return Attempt(job.id, newest.id, None)

    # --- helpers -----------------------------------------------------------------------------------
    def _look(self, slurm_id: int) -> SlurmJob | None:
        """The job's state, read at most once per ``state_ttl_s`` (the daemon asks several times a pass)."""
        now = time.monotonic()
        seen = self._seen.get(slurm_id)
        if seen is None or now - seen.at > self.opts.state_ttl_s:
            seen = self._seen[slurm_id] = _Seen(slurmctl.show_job(slurm_id), now)
        return seen.job

    def _forget(self, slurm_id: int) -> None:
        self._seen.pop(slurm_id, None)

    def _note_requeue(self, attempt: Attempt, seen: SlurmJob) -> None:
        before = self._restarts.setdefault(attempt.id, seen.restarts)
        if seen.restarts > before:
            self._restarts[attempt.id] = seen.restarts
            log.info(stamped(f"Slurm requeued job {attempt.id} (restart {seen.restarts}, {seen.reason or 'no reason'}"
                             f"); its trainer resumes from the newest checkpoint"))

    def _unreachable(self, exc: Exception) -> None:
        if time.monotonic() - self._unreachable_logged > 60:
            self._unreachable_logged = time.monotonic()
            log.warning(stamped(f"warning: Slurm did not answer ({exc}); jobs keep their state until it does"))


# --- checks at the edges -----------------------------------------------------------------------------
def check_slurm(options: SlurmOptions) -> None:
    """What ``serve --executor slurm`` checks before it serves: Slurm answers, the script is there,
    and sbatch accepts the operator's flags (``sbatch --test-only``, which submits nothing).

    Raises:
        JobError: one line saying which and how to fix it.
    """
    try:
        done = slurmctl.run(["sinfo", "-h", "-o", "%P"])
    except SlurmUnreachable as exc:
        raise JobError(f"--executor slurm: {exc}") from None
    if done.returncode != 0:
        raise JobError(f"--executor slurm: Slurm is not reachable: "
                       f"{slurmctl.error_line(done.stderr, 'sinfo failed')}")
    if not options.script.is_file():
        raise JobError(f"--slurm-script {options.script} is not a file")
    done = slurmctl.run(slurmctl.test_only(slurmctl.sbatch_args(
        _PROBE, "largegraph-check", Path("/dev/null"), options.script, options.sbatch_flags)))
    if done.returncode != 0:
        raise JobError(f"sbatch refuses serve's Slurm options ({' '.join(options.sbatch_flags) or 'none'}): "
                       f"{slurmctl.error_line(done.stderr, 'sbatch --test-only failed')}")


def check_partition(names: str) -> None:
    """``JobError`` unless Slurm knows every partition in ``names`` (comma-separated)."""
    for name in names.split(","):
        try:
            done = slurmctl.run(["scontrol", "show", "partition", "-o", name])
        except SlurmUnreachable as exc:
            raise JobError(f"--partition {names}: cannot check it: {exc}") from None
        if done.returncode != 0:
            raise JobError(f"--partition {names}: {slurmctl.error_line(done.stderr + done.stdout, 'unknown')}")


def _probe_job() -> Job:
    """A one-process CPU job: what serve's flags are checked with."""
    return Job(id=0, name="check", task="", config="", config_path="/dev/null", run_dir="/dev/null", epochs=None,
               state="queued", priority=0, max_retries=0, attempt=0, failures=0, nproc=1, device="cpu",
               max_restarts=None, submitted_at=0.0, not_before=0.0, started_at=None, finished_at=None,
               daemon_id=None, pid=None, pid_start=None, heartbeat_at=None, cancel_requested=0, exit_code=None,
               last_error=None, epoch=None, step=None, metric=None, last_metric=None, best_metric=None, resumes=0)


_PROBE = _probe_job()
