"""Logging for every largegraph process: one ``largegraph`` logger tree, configured once at the entry point.

Modules log through ``logging.getLogger(__name__)`` and never print. :func:`setup` (called by the CLI,
and by tests that read a command's lines) sends INFO lines to stdout as they are (through tqdm, so a
progress bar on the terminal is redrawn below them, never broken) and warnings to stderr as
``largegraph: warning: ...``. A worker of a multi-process run logs only on rank 0 unless a record asks
for every rank (``extra=EVERY_RANK``): N workers do not print the same line N times.

The CLI's one-line errors are not log records: they are the command's answer, written by the CLI.
"""
from __future__ import annotations

import logging
import os
import sys

ROOT = "largegraph"
EVERY_RANK = {"every_rank": True}
# An INFO line for stderr, as it is: a launcher's own progress, kept apart from its workers' stdout.
TO_STDERR = {"to_stderr": True}
WARNING_PREFIX = "largegraph: warning: "


class RankFilter(logging.Filter):
    """Drops records on ranks other than 0, except those logged with ``extra=EVERY_RANK``."""

    def __init__(self, rank: int = 0):
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        return self.rank == 0 or bool(getattr(record, "every_rank", False))


class _LineHandler(logging.Handler):
    """INFO to stdout (through tqdm.write while a bar may be drawn), WARNING and above to stderr
    (and INFO logged with ``extra=TO_STDERR``)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.levelno >= logging.WARNING:
                print(f"{WARNING_PREFIX}{message}", file=sys.stderr, flush=True)
                return
            if getattr(record, "to_stderr", False):
                print(message, file=sys.stderr, flush=True)
                return
            from tqdm.auto import tqdm

            tqdm.write(message, file=sys.stdout)
            sys.stdout.flush()
        except Exception:  # a closed pipe must not turn a log line into a crash
            self.handleError(record)


_filter = RankFilter()


def env_rank() -> int:
    """This process's rank as torchrun set it (0 outside torchrun)."""
    value = os.environ.get("RANK", "")
    return int(value) if value.isdigit() else 0


def setup(rank: int | None = None, level: int = logging.INFO) -> None:
    """Configure the ``largegraph`` logger once per process (later calls only update the rank)."""
    _filter.rank = env_rank() if rank is None else rank
    root = logging.getLogger(ROOT)
    if not any(isinstance(h, _LineHandler) for h in root.handlers):
        handler = _LineHandler()
        handler.addFilter(_filter)
        root.addHandler(handler)
        root.propagate = False
    root.setLevel(level)


def set_rank(rank: int) -> None:
    """The rank this process learnt once its group formed (lines on ranks > 0 are dropped from then on)."""
    _filter.rank = rank
