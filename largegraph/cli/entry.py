"""The ``largegraph`` command: the parser of every command, and the front door that turns errors into
one line and an exit code.

Exit codes: 0 success, 1 crashed (or a worker did), 2 bad input (config, dataset, checkpoint, arguments),
130 interrupted, 143 stopped by SIGTERM after writing a checkpoint (resume continues it).
"""
from __future__ import annotations

import argparse
import faulthandler
import os
import sys
import warnings

from largegraph.cli.data import add_data_commands
from largegraph.cli.parsing import OneLineParser
from largegraph.cli.runs import add_bench_command, add_predict_commands, add_report_command
from largegraph.cli.train import add_partition_command, add_train_commands
from largegraph.core import logs
from largegraph.core.errors import EXIT_CRASHED, EXIT_INTERRUPTED, EXIT_OK, LargeGraphError, SharedError, Stopped


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``largegraph`` command."""
    parser = OneLineParser(prog="largegraph", description="Sampled GNN training on OGB-scale graphs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser,
                                metavar="{train,resume,data,partition,predict,embed,bench,report,serve,submit,status,logs,cancel,token}")
    add_train_commands(sub)
    add_data_commands(sub)
    add_predict_commands(sub)
    from largegraph.cli.jobs import add_job_commands

    add_job_commands(sub, OneLineParser)
    add_partition_command(sub)
    add_bench_command(sub)
    add_report_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``largegraph`` console script."""
    from largegraph.core.processes import exit_now

    if not _is_torchrun_worker():
        code = _main(argv)
        if _trains(argv):
            # Everything a run writes is closed and fsynced by now. Native teardown at interpreter
            # exit (DGL/libxsmm and torch thread pools) once aborted a finished run on a loaded
            # machine, turning success into SIGABRT, which an orchestrator would retry; skip it.
            exit_now(code)
        return code
    # A torchrun worker never returns: tearing down gloo's process group can deadlock (see
    # largegraph.training.distributed), so even a crash ends through exit_now.
    try:
        code = _main(argv)
    except SystemExit as exc:
        # sys.exit() means success (DGL's graph server leaves that way once the trainers are done)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # a crash: its traceback is the report, then the worker must still exit
        if _lost_peer(exc):
            # Another worker died; the launcher names it. Its peers need not add a traceback each.
            print(f"largegraph: [rank {logs.env_rank()}] stopped: lost the connection to another worker ({exc})",
                  file=sys.stderr)
        else:
            import traceback

            traceback.print_exc()
        code = 1
    exit_now(code)
    return code  # not reached


def _lost_peer(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("gloo" in text or "NCCL" in text) and (
        "Connection reset" in text or "Connection closed" in text or "Broken pipe" in text or "Timed out" in text)


def _trains(argv: list[str] | None) -> bool:
    """Whether the command line ran a training command (train, resume)."""
    words = [w for w in (sys.argv[1:] if argv is None else argv) if not w.startswith("-")]
    return bool(words) and words[0] in ("train", "resume")


def _is_torchrun_worker() -> bool:
    if os.environ.get("LARGEGRAPH_DISTDGL_ROLE"):
        return True  # a distdgl server or trainer: ends like a torchrun worker, whatever happens
    try:
        return "TORCHELASTIC_RUN_ID" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def _main(argv: list[str] | None) -> int:
    # A crash inside DGL or torch native code should at least say where Python was.
    faulthandler.enable()
    logs.setup()
    # Before anything large is allocated; torchrun workers run this command too (largegraph.core.allocator).
    from largegraph.core import allocator

    allocator.apply()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides may come before or after options (`train CFG --run-dir D model.hidden=8`), which
    # argparse cannot split for a positional list; collect the stragglers here.
    if hasattr(args, "overrides"):
        args.overrides += [x for x in extra if "=" in x and not x.startswith("-")]
        extra = [x for x in extra if not ("=" in x and not x.startswith("-"))]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # DGL repeats this tuning hint for every data loader; it is advice, not a problem with the run.
    warnings.filterwarnings("ignore", message="Dataloader CPU affinity opt is not enabled")
    try:
        return args.func(args)
    except Stopped as exc:
        if logs.env_rank() == 0:
            print(f"largegraph: {exc}", file=sys.stderr)
        return exc.exit_code
    except LargeGraphError as exc:
        rank = logs.env_rank()
        # Under torchrun, an error rank 0 met is reported by rank 0 alone; another rank's own
        # error names the rank.
        if rank == 0:
            print(f"largegraph: error: {exc}", file=sys.stderr)
        elif not isinstance(exc, SharedError):
            print(f"largegraph: error: [rank {rank}] {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("largegraph: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `largegraph status --json | head`: the reader left; nothing to report. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except MemoryError:
        print("largegraph: error: out of memory; lower sampler.batch_size, fanouts or eval_batch_size", file=sys.stderr)
        return EXIT_CRASHED


if __name__ == "__main__":
    sys.exit(main())
