"""PyTorch's elastic launcher (torchrun), called in-process.

``largegraph train --nproc N`` is ``torchrun --standalone --nproc-per-node N -m largegraph train ...``,
so the workers, their environment, restarts (``--max-restarts``) and the shutdown of the whole group
when one worker dies are torchrun's, exactly as under a cluster launcher. ``python -m
largegraph.launcher ARGS`` is torchrun with ARGS (what the scripts in launch/ run): the same, but a
dead worker or a rendezvous that times out ends in one line on stderr rather than a traceback.
"""
from __future__ import annotations

import logging
import os
import signal
import sys

from largegraph.core.errors import EXIT_BAD_INPUT, EXIT_CRASHED, EXIT_STOPPED, describe_exit


class _DropWorkerFailureLines(logging.Filter):
    """torchrun logs every failed worker with a traceback-like block; the worker has already said
    what went wrong in one line, and :func:`launch` sums up the rest in one more."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and "failed" in record.getMessage())


def torchrun_args(nproc: int, max_restarts: int, worker_argv: list[str]) -> list[str]:
    """The torchrun command line (without ``torchrun``) that runs ``largegraph <worker_argv>``."""
    return ["--standalone", f"--nproc-per-node={nproc}", f"--max-restarts={max_restarts}",
            # Notice a dead worker within a second rather than torchrun's default five.
            "--monitor-interval=1", "--module", "largegraph", *worker_argv]


def launch(nproc: int, max_restarts: int, worker_argv: list[str]) -> int:
    """Run ``largegraph <worker_argv>`` as ``nproc`` workers; return the job's exit code.

    0: every worker finished. 2: the workers rejected their input (they printed why). 143: the
    job was stopped by SIGTERM after a checkpoint. 1: a worker crashed or was killed, after
    ``max_restarts`` restarts (each resumes from the newest checkpoint).
    """
    # torchrun would otherwise set 1 thread per worker and warn about it; share the cores instead.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return torchrun_main(torchrun_args(nproc, max_restarts, worker_argv))


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
        return _report(exc.failures, args.max_restarts)
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
    return 0


def _report(failures: dict, max_restarts: int) -> int:
    codes = {f.exitcode for f in failures.values()}
    if codes <= {EXIT_BAD_INPUT}:
        return EXIT_BAD_INPUT
    if codes <= {EXIT_STOPPED, -signal.SIGTERM}:
        return EXIT_STOPPED
    # A worker that dies takes its peers' connections with it, and they fail too; the root cause
    # is the one killed by a signal, else the earliest failure.
    rank, first = min(failures.items(), key=lambda kv: (kv[1].exitcode >= 0, kv[1].timestamp))
    after = f" after {max_restarts} restart(s)" if max_restarts else " (--max-restarts N restarts the job from its newest checkpoint)"
    print(f"largegraph: error: worker rank {rank} (pid {first.pid}) ended ({describe_exit(first.exitcode)}); the job "
          f"failed{after}; the worker's output is above", file=sys.stderr)
    return EXIT_CRASHED


if __name__ == "__main__":
    sys.exit(torchrun_main(sys.argv[1:]))
