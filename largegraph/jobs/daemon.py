"""``largegraph serve``: the loop that claims queued jobs, runs them, retries them and recovers them.

Each attempt is ``python -m largegraph train <frozen config> --run-dir <run dir> --resume auto``,
started, watched and stopped by an :class:`~largegraph.jobs.executor.Executor` (today
:class:`~largegraph.jobs.executor.LocalExecutor`: a process tree on this machine), with output
appended to the run directory's log (``RunDir.log_path``). Because every start uses
``--resume auto``, a retry, a requeue after a daemon crash and a resume after a drain are all the
same thing: the next attempt continues from the run directory's newest valid checkpoint.

Only one daemon supervises an attempt. A daemon that finds running jobs of a dead daemon
(SIGKILLed, machine rebooted) hands them to its executor: one that can watch them from here (a
scheduler's jobs, :class:`~largegraph.jobs.slurm.SlurmExecutor`) adopts them; otherwise what is
left of them is stopped and they are requeued.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import time
import uuid
from dataclasses import dataclass, field

from largegraph.core.errors import EXIT_BAD_INPUT, EXIT_OK, describe_exit
from largegraph.jobs import procs
from largegraph.jobs.executor import Attempt, Executor, LocalExecutor, stamped
from largegraph.jobs.progress import (error_line, finished_since, heartbeat_time, last_sign_of_life,
                                      metrics_stamp, read_progress)
from largegraph.jobs.store import Daemon as DaemonRow
from largegraph.jobs.store import Job, JobStore, Outcome, StoreBusy
from largegraph.jobs.workspace import Workspace, write_job_config
from largegraph.training.rundir import RunDir

log = logging.getLogger(__name__)
UNBOUNDED = 1 << 30  # the slots of a daemon whose scheduler places attempts: it never runs short


@dataclass
class ServeOptions:
    """``largegraph serve`` options (see ``largegraph serve --help``)."""

    max_parallel: int = 1
    cpu_slots: int | None = None        # default os.cpu_count(); a CPU job with nproc N takes N
    gpu_slots: int | None = None        # default: CUDA devices visible; a CUDA job with nproc N takes N
    heartbeat_timeout: float = 300.0    # a training job silent for this long is killed and retried
    startup_timeout: float = 3600.0     # the same before its first heartbeat (imports, dataset loading)
    poll_interval: float = 1.0
    retry_backoff: float = 10.0         # first retry delay; doubles per failure
    max_backoff: float = 600.0
    kill_grace: float = 30.0            # SIGTERM -> SIGKILL delay for cancel, drain and orphans
    exit_when_idle: bool = False        # exit once no job is queued or running
    once: bool = False                  # claim once, wait for those attempts, exit


@dataclass
class Child:
    """An attempt this daemon started and still supervises."""

    job: Job
    attempt: Attempt
    log_offset: int                      # where this attempt's output starts in the run's log
    started: float
    gpus: list[str] = field(default_factory=list)
    kill_reason: str | None = None       # set when the daemon killed it for going silent
    term_sent: float | None = None       # when SIGTERM went out (cancel or drain)
    metrics_seen: tuple | None = None    # metrics_stamp() of the run's metrics when last read
    beat_recorded: float = 0.0


def default_gpu_slots() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip():
        return 0
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # no usable CUDA runtime means no GPU slots, not a failed daemon
        return 0


class JobDaemon:
    """One ``largegraph serve`` process on a workspace."""

    def __init__(self, workspace: Workspace, options: ServeOptions, executor: Executor | None = None):
        self.ws = workspace
        self.opts = options
        self.cpu_slots = options.cpu_slots if options.cpu_slots is not None else (os.cpu_count() or 1)
        self.gpu_slots = options.gpu_slots if options.gpu_slots is not None else default_gpu_slots()
        visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        self.free_gpus = [visible[i] if i < len(visible) else str(i) for i in range(self.gpu_slots)]
        self.id = uuid.uuid4().hex[:12]
        self.host = socket.gethostname()
        self.store = JobStore(workspace.db_path)
        self.children: dict[int, Child] = {}
        self.stop_signal: int | None = None
        self.force = False
        self.claiming = True
        self._last_recovery = 0.0  # monotonic time of the last look for orphaned jobs
        self.executor: Executor = executor or LocalExecutor(workspace, options.kill_grace)
        if not self.executor.uses_slots:
            self.cpu_slots = self.gpu_slots = UNBOUNDED
            self.free_gpus = []

    # --- the loop ----------------------------------------------------------------------------------
    def serve(self) -> int:
        """Run until idle (``--exit-when-idle``/``--once``) or until a SIGTERM/SIGINT drains us.

        Returns:
            ``EXIT_OK``: a drain is a clean stop (the jobs it stopped resume under the next daemon).
        """
        self.store.register_daemon(self.id, self.host, os.getpid(), procs.start_time(os.getpid()))
        self._install_signals()
        slots = (f"{self.cpu_slots} CPU slots, {self.gpu_slots} GPU slots" if self.executor.uses_slots
                 else "the scheduler places them")
        self.log(f"daemon {self.id} serving {self.ws.root}: max-parallel {self.opts.max_parallel}, {slots}")
        try:
            while not self._tick():
                time.sleep(self.opts.poll_interval)
        finally:
            self.store.stop_daemon(self.id)
        self.log(f"daemon {self.id} stopped")
        return EXIT_OK

    def _tick(self) -> bool:
        """One pass of the loop; True when the daemon should exit."""
        try:
            self._reap()
            if self.stop_signal is not None:
                self._drain()
                return True
            self._watch()
            if time.monotonic() - self._last_recovery > max(5.0, self.opts.poll_interval):
                self.recover_orphans()
                self._last_recovery = time.monotonic()
            self.store.beat_daemon(self.id)
            if self.claiming:
                self._fill()
                self.claiming = not self.opts.once
            return self._done()
        except StoreBusy as exc:
            # Another process held the store too long; every step above is safe to redo next pass.
            self.log(f"warning: {exc}")
            return False

    def log(self, line: str) -> None:
        """Log a line of ``serve``'s output, after the time."""
        log.info(stamped(line))

    def _install_signals(self) -> None:
        def handler(signum, _frame):
            if self.stop_signal is not None:
                self.force = True  # second signal: stop waiting for checkpoints
            self.stop_signal = signum

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _done(self) -> bool:
        if self.children:
            return False
        if self.opts.once:
            return True
        if self.opts.exit_when_idle:
            return not self.store.jobs("queued") and not self.store.jobs("running")
        return False

    # --- starting ----------------------------------------------------------------------------------
    def _free_cpu(self) -> int:
        return self.cpu_slots - sum(c.job.nproc for c in self.children.values() if c.job.slots_kind == "cpu")

    def _free_gpu(self) -> int:
        return len(self.free_gpus) if self.executor.uses_slots else UNBOUNDED

    def _fill(self) -> None:
        """Claim and start jobs while parallelism and slots allow."""
        self._fail_unrunnable()
        while len(self.children) < self.opts.max_parallel and self.stop_signal is None:
            job = self.store.claim(self.id, self._free_cpu(), self._free_gpu())
            if job is None:
                return
            self._start(job)

    def _fail_unrunnable(self) -> None:
        """A queued job larger than this daemon's slot pool would wait forever: fail it and say why."""
        for job in self.store.jobs("queued"):
            refusal = self.executor.refusal(job)
            if refusal is not None:
                self.store.fail_queued(job.id, refusal)
                continue
            total = self.gpu_slots if job.slots_kind == "gpu" else self.cpu_slots
            if job.nproc > total:
                self.store.fail_queued(job.id, f"needs {job.nproc} {job.slots_kind.upper()} slots but the daemon "
                                       f"has {total} (serve --{job.slots_kind}-slots, or submit a smaller --nproc)")

    def _start(self, job: Job) -> None:
        run = RunDir(job.run_dir)
        placed = self.executor.uses_slots
        gpus = [self.free_gpus.pop(0) for _ in range(job.nproc)] if placed and job.slots_kind == "gpu" else []
        env = dict(os.environ, PYTHONUNBUFFERED="1", LARGEGRAPH_JOB_ID=str(job.id), LARGEGRAPH_JOB_NAME=job.name)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        if placed and "OMP_NUM_THREADS" not in os.environ:
            # Each job's torch would otherwise use every core; parallel jobs then oversubscribe the
            # machine and OpenMP's spinning threads slow all of them (2 jobs on 2 cores: 9.8 s -> 5.9 s).
            env["OMP_NUM_THREADS"] = str(max(1, self.cpu_slots // self.opts.max_parallel // job.nproc))
        try:
            self.executor.clear_strays(job)
            run.path.mkdir(parents=True, exist_ok=True)
            write_job_config(job.config_path, job.config)  # the frozen config, even if the file went missing
            with open(run.log_path, "ab") as out:
                offset = out.tell()
                out.write(f"=== largegraph serve: {job.name} (id {job.id}) attempt {job.attempt} at "
                          f"{time.strftime('%Y-%m-%d %H:%M:%S')} by daemon {self.id} ===\n".encode())
            attempt = self.executor.start(job, env, run.log_path, self.ws.root)
        except OSError as exc:
            self.free_gpus.extend(gpus)
            self.store.end_attempt(job, self.id, Outcome("failed", "not-started", last_error=f"cannot start: {exc}"))
            self.log(f"job {job.name} failed to start: {exc}")
            return
        # Supervised from here on, even if recording the attempt has to wait for a busy store.
        self.children[job.id] = Child(job, attempt, offset, time.time(), gpus)
        self.store.set_pid(job, attempt.id, attempt.since)
        self.log(f"job {job.name} (id {job.id}) attempt {job.attempt} started: {self.executor.noun} {attempt.id}")

    # --- watching ----------------------------------------------------------------------------------
    def _watch(self) -> None:
        """Record progress, kill silent trainers, act on cancel requests."""
        mine = {j.id: j for j in self.store.jobs("running", daemon_id=self.id)}
        now = time.time()
        for job_id, child in self.children.items():
            self._record_progress(child)
            job = mine.get(job_id)
            if job is not None and job.cancel_requested:
                self._stop_child(child, "cancel requested", now)
            elif child.kill_reason is None:
                self._check_silence(child, now)

    def _check_silence(self, child: Child, now: float) -> None:
        """Kill a trainer that stopped giving signs of life (frozen, deadlocked, stuck on I/O)."""
        since = self.executor.running_since(child.attempt)
        if since is None:
            return  # waiting for the scheduler: no process yet that could give signs of life
        beat = heartbeat_time(child.job.run_dir)
        started = beat is not None and beat >= since  # this attempt's processes have reached training
        limit, option = ((self.opts.heartbeat_timeout, "--heartbeat-timeout") if started
                         else (self.opts.startup_timeout, "--startup-timeout"))
        silent = now - max(since, last_sign_of_life(child.job.run_dir) or 0.0)
        if silent > limit:
            child.kill_reason = f"no heartbeat for {silent:.0f}s ({option} {limit:g})"
            self.log(f"job {child.job.name}: {child.kill_reason}; killing it")
            self.executor.kill(child.attempt)  # a frozen process ignores SIGTERM

    def _alive_at(self, child: Child) -> float:
        return max(child.started, last_sign_of_life(child.job.run_dir) or 0.0)

    def _record_progress(self, child: Child) -> None:
        update: dict = {}
        seen = metrics_stamp(child.job.run_dir)
        if seen is not None and seen != child.metrics_seen:
            child.metrics_seen = seen
            update.update(read_progress(child.job.run_dir))
        alive = self._alive_at(child)
        if alive - child.beat_recorded >= 1.0:
            child.beat_recorded = update["heartbeat_at"] = alive
        if update:
            self.store.record_progress(child.job.id, self.id, update)

    def _stop_child(self, child: Child, why: str, now: float) -> None:
        """Ask the attempt to stop (SIGTERM: the trainer checkpoints and exits 143), then kill all of it
        if it is still there after ``kill_grace`` seconds."""
        if child.term_sent is None:
            self.log(f"job {child.job.name}: {why}; sending SIGTERM")
            self.executor.terminate(child.attempt)
            child.term_sent = now
        elif now - child.term_sent > self.opts.kill_grace or self.force:
            self.executor.kill(child.attempt)

    # --- ending ------------------------------------------------------------------------------------
    def _reap(self) -> None:
        for job_id, child in list(self.children.items()):
            code = self.executor.poll(child.attempt)
            if code is None:
                continue
            self.executor.kill(child.attempt)  # stragglers, e.g. workers of a killed launcher
            result = self._judge(child, code)
            owned = self.store.end_attempt(child.job, self.id, result)
            # Forgotten only once recorded: if the store was busy, the next pass judges it again.
            del self.children[job_id]
            self.executor.release(child.attempt)
            self.free_gpus.extend(child.gpus)
            if owned:
                self.log(f"job {child.job.name} attempt {child.job.attempt} ended ({describe_exit(code)}): "
                         f"{result.state}" + (f" - {result.last_error}" if result.last_error else ""))

    def _judge(self, child: Child, code: int) -> Outcome:
        job = self.store.get(child.job.id)
        if code == EXIT_OK or finished_since(job.run_dir, child.started):
            # A trainer that wrote its summary has finished, whatever killed it afterwards (a stop
            # request that came too late, a crash in native teardown at exit).
            return Outcome("succeeded", "exited", code)
        if job.cancel_requested:
            return Outcome("cancelled", "cancelled", code, "cancelled by user")
        if self.stop_signal is not None:
            # Drained: stopped on purpose to resume later; not the job's fault.
            return Outcome("queued", "drained", code, f"stopped by daemon shutdown ({describe_exit(code)})")
        found = error_line(RunDir(job.run_dir).log_path, child.log_offset)
        why = child.kill_reason or describe_exit(code) + (f": {found}" if found else "")
        if code == EXIT_BAD_INPUT and child.kill_reason is None:
            return Outcome("failed", "bad-input", code, why, failure=True)
        return self._failure(job, code, why, "killed" if child.kill_reason else "crashed")

    def _failure(self, job: Job, code: int | None, why: str, outcome: str) -> Outcome:
        if job.failures + 1 > job.max_retries:
            return Outcome("failed", outcome, code, why, failure=True)
        delay = min(self.opts.retry_backoff * 2 ** job.failures, self.opts.max_backoff)
        return Outcome("queued", outcome, code, f"{why} (retry {job.failures + 1}/{job.max_retries} in {delay:g}s)",
                       failure=True, not_before=time.time() + delay)

    def _drain(self) -> None:
        """SIGTERM every running job (the trainer checkpoints and exits), wait, requeue them."""
        if self.children:
            self.log(f"draining: stopping {len(self.children)} running job(s); they resume when a daemon returns")
        deadline = time.monotonic() + self.opts.kill_grace
        while self.children:
            now = time.time()
            for child in self.children.values():
                self._stop_child(child, "daemon shutting down", now)
                if time.monotonic() > deadline or self.force:
                    self.executor.kill(child.attempt)
            time.sleep(0.1)
            self._reap()

    # --- recovery ----------------------------------------------------------------------------------
    def recover_orphans(self) -> None:
        """Requeue running jobs whose daemon is gone, after making sure none of their processes live on."""
        for other in self.store.daemons():
            if other.host == self.host and not daemon_alive(other):
                self.store.stop_daemon(other.id)  # died without saying so (SIGKILL, OOM killer)
        for job in self.store.jobs("running"):
            if job.daemon_id == self.id:
                continue
            owner = self.store.daemon(job.daemon_id)
            if owner is not None and owner.host != self.host:
                continue  # cannot see or signal processes on another machine
            if (owner is not None and daemon_alive(owner)) or not self.store.adopt(job, job.daemon_id, self.id):
                continue
            self.log(f"job {job.name}: daemon {job.daemon_id} is gone; recovering it")
            self._recover(job)

    def _supervise(self, orphan: Job, attempt: Attempt) -> None:
        """Watch, from now on, the attempt of a dead daemon that the executor took over."""
        job = self.store.get(orphan.id)  # owned by this daemon now
        offset = _log_size(RunDir(job.run_dir).log_path)  # its output so far is the dead daemon's to have read
        self.children[job.id] = Child(job, attempt, offset, job.started_at or time.time())
        if (job.pid, job.pid_start) != (attempt.id, attempt.since):
            self.store.set_pid(job, attempt.id, attempt.since)  # the dead daemon never recorded it
        self.log(f"job {job.name}: adopted {self.executor.noun} {attempt.id} of daemon {orphan.daemon_id}")

    def _recover(self, job: Job) -> None:
        attempt = self.executor.adopt(job)
        if attempt is not None:
            self._supervise(job, attempt)
            return
        if job.cancel_requested:
            result = Outcome("cancelled", "cancelled", last_error="cancelled by user")
        elif finished_since(job.run_dir, job.started_at or 0.0):
            result = Outcome("succeeded", "orphaned")  # finished while no daemon watched it
        else:
            result = Outcome("queued", "orphaned", last_error=f"requeued: daemon {job.daemon_id} died while it ran")
        self.store.end_attempt(job, self.id, result)
        self.log(f"job {job.name}: {result.state} after its daemon died")


def _log_size(path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def daemon_alive(daemon: DaemonRow, stale_after_s: float = 120.0) -> bool:
    """Whether a daemon row belongs to a live ``serve`` process: by pid and start time on this host,
    by a recent heartbeat on another one."""
    if daemon.stopped_at is not None:
        return False
    if daemon.host == socket.gethostname():
        return procs.is_alive(daemon.pid, daemon.pid_start)
    return time.time() - daemon.heartbeat_at < stale_after_s

