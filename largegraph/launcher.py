"""Launchers of torch.distributed workers: processes that start the workers and watch them.

``largegraph train --nproc N`` runs :func:`run_workers`: N workers of ``largegraph train`` on this
machine, each given the environment torchrun gives its workers (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``TORCHELASTIC_RESTART_COUNT`` ...), so a worker cannot tell it from
``torchrun --standalone --nproc-per-node N`` (:func:`torchrun_args`). This launcher imports neither
torch nor DGL, whose import is most of what torchrun's own agent holds in memory beside the
workers (docs/multi-worker.md), for what is, on one machine, starting N processes and watching
them. It keeps torchrun's contract: the
first worker to fail ends the group; ``--max-restarts`` restarts the whole group, which resumes
from the newest checkpoint; SIGTERM reaches the workers, which checkpoint and stop (exit 143).

``python -m largegraph.launcher ARGS`` is torchrun itself with ARGS (what the scripts in launch/
run on clusters, where its rendezvous joins the nodes): the same, but a dead worker or a
rendezvous that times out ends in one line on stderr rather than a traceback.
"""
from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from largegraph.core import processes
from largegraph.core.errors import EXIT_BAD_INPUT, EXIT_CRASHED, EXIT_OK, EXIT_STOPPED, ConfigError, describe_exit
from largegraph.core.signals import StopRequest

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 30.0  # as torchrun: workers asked to stop get this long to checkpoint before SIGKILL
POLL_S = 0.1  # notice a dead worker within a poll (torchrun's --monitor-interval)


class _DropWorkerFailureLines(logging.Filter):
    """torchrun logs every failed worker with a traceback-like block; the worker has already said
    what went wrong in one line, and :func:`torchrun_main` sums up the rest in one more."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and "failed" in record.getMessage())


def torchrun_args(nproc: int, max_restarts: int, worker_argv: list[str]) -> list[str]:
    """The torchrun command line (without ``torchrun``) equivalent to :func:`run_workers`."""
    return ["--standalone", f"--nproc-per-node={nproc}", f"--max-restarts={max_restarts}",
            "--monitor-interval=1", "--module", "largegraph", *worker_argv]


def freeze_config(cfg, run_dir: str | Path | None, resume: str) -> tuple[Path, Path]:
    """Write the launch's resolved config into its run directory; returns (run directory, config file).

    Every process the launch starts reads that file (with no overrides), so the config is resolved
    once, and a worker a restart starts again reads the same job.

    Args:
        cfg: the resolved :class:`~largegraph.config.JobConfig`.
        run_dir: ``--run-dir``, or None for the default ``runs/<name>-<UTC time>``.
        resume: ``--resume``: with ``never``, a directory that holds checkpoints is refused before
            its config is replaced.
    """
    from largegraph.training.rundir import RunDir, default_run_dir

    run = RunDir(run_dir or default_run_dir(cfg))
    if resume == "never" and any(run.checkpoints.glob("step-*.json")):
        raise ConfigError(f"{run.path} already holds checkpoints; pass --resume auto to continue it or "
                          f"choose another --run-dir")
    run.create(cfg)
    return run.path, run.config_path


def check_device(requested: str) -> None:
    """Refuse a device the workers could not use, in one line, without importing torch here: the
    check runs in a short-lived child (:mod:`largegraph.core.device`)."""
    probe = subprocess.run([sys.executable, "-m", "largegraph.core.device", requested], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, check=False)
    if probe.returncode == EXIT_BAD_INPUT:
        raise ConfigError(probe.stdout.strip())


@dataclass
class Failure:
    """A worker that ended badly (the fields torchrun's ``ProcessFailure`` has, which :func:`report` reads)."""

    pid: int
    exitcode: int
    timestamp: float


@dataclass
class Workers:
    """One start of the worker group (a restart is a new one)."""

    procs: list[subprocess.Popen]
    failures: dict[int, Failure] = field(default_factory=dict)

    def poll(self) -> None:
        """Record every worker that has ended badly since the last poll."""
        for rank, proc in enumerate(self.procs):
            code = proc.poll()
            if code not in (None, EXIT_OK) and rank not in self.failures:
                self.failures[rank] = Failure(proc.pid, code, time.time())

    def done(self) -> bool:
        return all(p.poll() == EXIT_OK for p in self.procs)

    def terminate(self) -> None:
        """SIGTERM to the workers still running: they checkpoint at the next batch and exit 143."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """:meth:`terminate`, then SIGKILL what still runs after ``timeout_s``."""
        self.terminate()
        if not processes.wait_ended(self.procs, timeout_s):
            processes.kill_and_reap(self.procs)


def worker_env(rank: int, nproc: int, port: int, restart: int, max_restarts: int, run_id: str) -> dict[str, str]:
    """What torchrun's local agent sets for worker ``rank`` of a one-machine group."""
    return {"RANK": str(rank), "LOCAL_RANK": str(rank), "GROUP_RANK": "0", "ROLE_RANK": str(rank),
            "ROLE_NAME": "default", "WORLD_SIZE": str(nproc), "LOCAL_WORLD_SIZE": str(nproc),
            "GROUP_WORLD_SIZE": "1", "ROLE_WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port), "TORCHELASTIC_RESTART_COUNT": str(restart),
            "TORCHELASTIC_MAX_RESTARTS": str(max_restarts), "TORCHELASTIC_RUN_ID": run_id,
            # rank 0 hosts the store at MASTER_PORT (no agent store to join)
            "TORCHELASTIC_USE_AGENT_STORE": "False",
            "TORCH_NCCL_ASYNC_ERROR_HANDLING": os.environ.get("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")}


def run_workers(nproc: int, max_restarts: int, worker_argv: list[str]) -> int:
    """Run ``largegraph <worker_argv>`` as ``nproc`` workers on this machine; return the job's exit code.

    0: every worker finished. 2: the workers rejected their input (they said why; a restart cannot
    help). 143: stopped by a signal after a checkpoint. 1: a worker crashed or was killed, after
    ``max_restarts`` restarts (each resumes from the newest checkpoint).
    """
    # torchrun would otherwise set 1 thread per worker and warn about it; share the cores instead.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    run_id = secrets.token_hex(8)
    argv = [sys.executable, "-u", "-m", "largegraph", *worker_argv]
    workers: Workers | None = None

    def pass_on() -> None:  # the workers checkpoint and stop; the watch loop then reports 143
        if workers is not None:
            workers.terminate()

    # SIGTERM, SIGINT or SIGHUP to the launcher: a request that the workers checkpoint and stop
    with StopRequest((signal.SIGTERM, signal.SIGINT, signal.SIGHUP), on_request=pass_on) as stop:
        for restart in range(max_restarts + 1):
            port = processes.free_ports(1)
            envs = [worker_env(rank, nproc, port, restart, max_restarts, run_id) for rank in range(nproc)]
            workers = Workers([processes.spawn(argv, env, new_session=True) for env in envs])
            code = _watch(workers, stop)
            if code is not None:
                return code
            if restart == max_restarts or not _restartable(workers.failures):
                break
            rank, failure = root_cause(workers.failures)
            log.warning(f"worker rank {rank} (pid {failure.pid}) ended ({describe_exit(failure.exitcode)}); "
                        f"restarting the workers from the newest checkpoint (restart {restart + 1} of {max_restarts})")
    return report(workers.failures, max_restarts)


def _watch(workers: Workers, stop: StopRequest) -> int | None:
    """Wait for the group to finish or be stopped (the job's exit code), or for a worker to fail
    (None, once the rest of the group is stopped too)."""
    while not workers.done():
        if stop.requested:
            workers.stop()
            return EXIT_STOPPED
        workers.poll()
        if workers.failures:
            workers.stop()
            workers.poll()
            return None
        time.sleep(POLL_S)
    return EXIT_OK


def _expected_end(failures: dict) -> int | None:
    """The exit code of failures that are no crash, which a restart would not mend: input the
    workers refused (2: a restart reads the same), or a stop someone asked for with SIGTERM (143)."""
    codes = {f.exitcode for f in failures.values()}
    if codes <= {EXIT_BAD_INPUT}:
        return EXIT_BAD_INPUT
    if codes <= {EXIT_STOPPED, -signal.SIGTERM}:
        return EXIT_STOPPED
    return None


def _restartable(failures: dict) -> bool:
    return _expected_end(failures) is None


def root_cause(failures: dict) -> tuple[int, Failure]:
    """The (rank, failure) to report: a worker that dies takes its peers' connections with it, and
    they fail too; the root cause is the one killed by a signal, else the earliest failure."""
    return min(failures.items(), key=lambda kv: (kv[1].exitcode >= 0, kv[1].timestamp))


def report(failures: dict, max_restarts: int) -> int:
    """The job's exit code for these worker failures, said in one line on stderr when it crashed."""
    expected = _expected_end(failures)
    if expected is not None:
        return expected
    rank, first = root_cause(failures)
    after = f" after {max_restarts} restart(s)" if max_restarts else " (--max-restarts N restarts the job from its newest checkpoint)"
    print(f"largegraph: error: worker rank {rank} (pid {first.pid}) ended ({describe_exit(first.exitcode)}); the job "
          f"failed{after}; the worker's output is above", file=sys.stderr)
    return EXIT_CRASHED


def torchrun_main(argv: list[str]) -> int:
    """``python -m largegraph.launcher TORCHRUN-ARGS``: torchrun itself, whose failures (a dead
    worker, a rendezvous that times out) end in one line on stderr and an exit code instead of a
    traceback. The cluster launchers in launch/ use it in place of the ``torchrun`` script."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError, RendezvousTimeoutError
    from torch.distributed.run import get_args_parser, run

    for name in ("torch.distributed.elastic.multiprocessing.api", "torch.distributed.elastic.agent.server.api"):
        logging.getLogger(name).addFilter(_DropWorkerFailureLines())
    args = get_args_parser().parse_args(argv)
    try:
        run(args)
    except ChildFailedError as exc:
        return report(exc.failures, args.max_restarts)
    except SignalException:
        return EXIT_STOPPED
    except RendezvousTimeoutError:
        print(f"largegraph: error: rendezvous timed out: not all of --nnodes {args.nnodes} joined "
              f"{args.rdzv_endpoint} (id {args.rdzv_id}) in time; start the same command on every node with "
              f"the same rendezvous id, and check that every node reaches the endpoint", file=sys.stderr)
        return EXIT_CRASHED
    except RendezvousError as exc:
        print(f"largegraph: error: rendezvous at {args.rdzv_endpoint} failed: {exc or type(exc).__name__}; "
              f"check the endpoint's host and port", file=sys.stderr)
        return EXIT_CRASHED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(torchrun_main(sys.argv[1:]))
