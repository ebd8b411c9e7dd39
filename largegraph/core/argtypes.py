"""argparse value types shared by the commands: a bad value is one line naming what was expected."""
from __future__ import annotations

import argparse
from typing import Callable


def _checked(kind, what: str, ok: Callable[[float], bool], rule: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value
    return parse


def positive(kind):
    """A parser of numbers of ``kind`` (int, float) greater than zero."""
    return _checked(kind, "a number", lambda v: v > 0, "positive")


non_negative_int = _checked(int, "a whole number", lambda v: v >= 0, "0 or more")
