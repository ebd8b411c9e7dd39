"""Choosing the compute device, and refusing CUDA clearly when the DGL build cannot use it."""
from __future__ import annotations

import functools
import sys

import torch

from largegraph.core.errors import EXIT_BAD_INPUT, ConfigError

DGL_CUDA_HINT = (
    "install DGL's CUDA wheel matching torch 2.2.1, e.g. "
    "`pip install dgl==2.1.0 -f https://data.dgl.ai/wheels/torch-2.2/cu121/repo.html` "
    "(the PyPI wheel is CPU-only), or run with --device cpu"
)


@functools.cache
def dgl_has_cuda() -> bool:
    """True when this DGL build can put a graph on the GPU (PyPI's dgl wheel cannot)."""
    if not torch.cuda.is_available():
        return False
    import dgl

    try:
        dgl.graph(([0], [0])).to("cuda")
    except Exception:  # DGL raises its own error types (DGLError, RuntimeError) for a CPU-only build
        return False
    return True


def resolve_device(requested: str = "auto") -> torch.device:
    """Map ``auto|cpu|cuda|cuda:N`` to a torch.device that both torch and DGL can use.

    Raises:
        ConfigError: CUDA was requested but torch sees no GPU, or DGL was built without CUDA.
    """
    if requested == "auto":
        return torch.device("cuda") if dgl_has_cuda() else torch.device("cpu")
    if requested == "cpu":
        return torch.device("cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {requested}: torch sees no CUDA GPU on this machine; use --device cpu")
        if not dgl_has_cuda():
            raise ConfigError(f"--device {requested}: this DGL build has no CUDA support; {DGL_CUDA_HINT}")
        return torch.device(requested)
    raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {requested!r}")


@functools.cache
def cpu_has_bf16_units() -> bool | None:
    """Whether this CPU computes bfloat16 natively; None where /proc/cpuinfo cannot be read.
    Elsewhere PyTorch emulates it, often tens of times slower than fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            return bf16_units_in(f.read())
    except OSError:
        return None


def bf16_units_in(cpuinfo: str) -> bool | None:
    """Whether a /proc/cpuinfo text lists bf16 units (x86 ``avx512_bf16``/``amx_bf16``, Arm ``bf16``);
    None when it lists no flags at all."""
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"}) if flags else None


def precision_warning(precision: str, device: torch.device) -> str | None:
    """A line to show when ``train.precision`` would make this run slower, not faster."""
    if precision == "bf16" and device.type == "cpu" and cpu_has_bf16_units() is False:
        return ("train.precision=bf16 on a CPU without bf16 units (no avx512_bf16/amx_bf16): "
                "PyTorch emulates it, often tens of times slower than fp32; set train.precision=fp32 here")
    return None


def _check(requested: str) -> int:
    """``python -m largegraph.core.device REQUESTED``: exit 2 with the reason on stdout if this
    machine cannot train on ``REQUESTED`` (what a launcher asks before starting workers)."""
    try:
        resolve_device(requested)
    except ConfigError as exc:
        print(exc)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(_check(sys.argv[1]))
