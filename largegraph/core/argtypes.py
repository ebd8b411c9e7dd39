"""argparse value types shared by the commands: a bad value is one line naming what was expected."""
from __future__ import annotations

import argparse
from typing import Callable, Iterable


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


def add_valued_options(parser: argparse.ArgumentParser, options: Iterable[tuple[str, type, object]]) -> None:
    """Options of one typed value and a default whose names say enough: ``(flag, type, default)``."""
    for flag, kind, default in options:
        parser.add_argument(flag, type=kind, default=default)


def positive(kind):
    """A parser of numbers of ``kind`` (int, float) greater than zero."""
    return _checked(kind, "a number", lambda v: v > 0, "positive")


non_negative_int = _checked(int, "a whole number", lambda v: v >= 0, "0 or more")


def ratios(text: str) -> tuple[float, float, float]:
    """Three fractions ``train,valid,test`` such as ``0.8,0.1,0.1``."""
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.8,0.1,0.1, got {text!r}") from None
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.8,0.1,0.1, got {text!r}")
    return parts


def scales(text: str) -> list[float]:
    """Two or more increasing positive graph scales such as ``0.01,0.1,1.0``."""
    try:
        scales = [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected scales like 0.01,0.1,1.0, got {text!r}") from None
    if len(scales) < 2 or any(s <= 0 for s in scales) or scales != sorted(scales):
        raise argparse.ArgumentTypeError(f"expected two or more increasing positive scales, got {text!r}")
    return scales
