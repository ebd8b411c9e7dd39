"""``largegraph train --nproc N``: start N local workers through PyTorch's elastic launcher.

This is ``torchrun --standalone --nproc-per-node N -m largegraph train ...`` called in-process, so
the workers, their environment, restarts (``--max-restarts``) and the shutdown of the whole group
when one worker dies are torchrun's, exactly as under a cluster launcher.
"""
from __future__ import annotations

import logging
import os
import signal
import sys

from largegraph.errors import Stopped

EXIT_CRASHED = 1


class _DropWorkerFailureLines(logging.Filter):
    """torchrun logs every failed worker with a traceback-like block; the worker has already said
    what went wrong in one line, and :func:`launch` sums up the rest in one more."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and "failed" in record.getMessage())


def _describe(exitcode: int) -> str:
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


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
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    # torchrun would otherwise set 1 thread per worker and warn about it; share the cores instead.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    for name in ("torch.distributed.elastic.multiprocessing.api", "torch.distributed.elastic.agent.server.api"):
        logging.getLogger(name).addFilter(_DropWorkerFailureLines())
    args = get_args_parser().parse_args(torchrun_args(nproc, max_restarts, worker_argv))
    try:
        run(args)
    except ChildFailedError as exc:
        return _report(exc.failures, max_restarts)
    except SignalException:
        return Stopped.exit_code
    return 0


def _report(failures: dict, max_restarts: int) -> int:
    codes = {f.exitcode for f in failures.values()}
    if codes <= {2}:
        return 2
    if codes <= {Stopped.exit_code, -signal.SIGTERM}:
        return Stopped.exit_code
    rank, first = min(failures.items(), key=lambda kv: kv[1].timestamp)
    after = f" after {max_restarts} restart(s)" if max_restarts else " (--max-restarts N restarts the job from its newest checkpoint)"
    print(f"largegraph: error: worker rank {rank} (pid {first.pid}) {_describe(first.exitcode)}; the job "
          f"failed{after}; the worker's output is above", file=sys.stderr)
    return EXIT_CRASHED
