"""The argument parser every ``largegraph`` command uses: a bad argument is one line, exit 2."""
from __future__ import annotations

import argparse
import sys

from largegraph.core.errors import EXIT_BAD_INPUT


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus an error; we promise one line on stderr."""

    def error(self, message: str):
        print(f"largegraph: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)
