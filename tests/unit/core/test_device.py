"""A bf16 run on a CPU that only emulates bf16 is warned about, by the CPU's flags."""
from __future__ import annotations

import torch

from largegraph.core import device
from largegraph.core.device import bf16_units_in, precision_warning

X86_OLD = "processor\t: 0\nflags\t\t: fpu sse sse2 avx fma f16c\n"
X86_BF16 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


def test_bf16_units_are_read_from_the_cpu_flags():
    assert bf16_units_in(X86_OLD) is False
    assert bf16_units_in(X86_BF16) is True
    assert bf16_units_in(ARM_BF16) is True
    assert bf16_units_in("model name : unknown\n") is None  # no flags listed: unknown, no warning


def test_only_bf16_on_an_emulating_cpu_is_warned(monkeypatch):
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: False)
    line = precision_warning("bf16", torch.device("cpu"))
    assert line and "train.precision=fp32" in line and "\n" not in line
    assert precision_warning("fp32", torch.device("cpu")) is None
    assert precision_warning("bf16", torch.device("cuda")) is None
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: None)
    assert precision_warning("bf16", torch.device("cpu")) is None
