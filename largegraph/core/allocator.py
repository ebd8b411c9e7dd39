"""The C allocator of every process that trains or samples: freed large blocks are kept for reuse.

glibc serves blocks above its mmap threshold (at most 32 MiB, adjusted at run time) with their own
``mmap`` and hands them back to the kernel on ``free``. A training step allocates and frees the same
large tensors every batch (gathered features, activations, gradients), so each batch faulted its
memory in again page by page: on 2 cores over a third of the CPU time of an epoch went to the kernel
(bench/README.md). With the mmap threshold at 1 GiB and trimming off, freed blocks go back to
malloc's own free lists and the next batch reuses them. The cost: the process keeps its high-water
mark of heap memory until it exits, which a training process reaches in its first batches anyway.

:func:`apply` runs at start-up of the ``largegraph`` command (every torchrun worker runs that
command too) and again in every sampler worker process (:func:`worker_init`). Turn it off with
``LARGEGRAPH_ALLOCATOR=system`` in the environment: glibc's defaults, or whatever ``MALLOC_*``
variables or an ``LD_PRELOAD``-ed allocator say. It is off by itself where the process has less
than 4 GiB of memory to use (MemAvailable, or its cgroup's limit), since kept blocks cost headroom.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
from typing import Iterator

ENV = "LARGEGRAPH_ALLOCATOR"
KEEP, SYSTEM = "keep", "system"

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3

# mallopt takes a C int. Blocks above 1 GiB (a whole feature matrix, say) keep their own mapping,
# which spares the heap a hole of that size once they are freed.
MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = 2**31 - 1  # never give the top of the heap back
TOP_PAD = 64 << 20  # grow the heap in 64 MiB steps rather than one brk per large tensor

_applied: bool | None = None  # what apply() did in this process: None = not called


def mode() -> str:
    """``keep`` (default) or ``system``, from ``LARGEGRAPH_ALLOCATOR``."""
    return SYSTEM if os.environ.get(ENV, KEEP).strip().lower() in (SYSTEM, "off", "0", "false") else KEEP


def _libc() -> ctypes.CDLL | None:
    # The symbols already loaded into this process, not ctypes.util.find_library: that forks
    # ldconfig, and a trainer that forks leaves a second copy of itself in the process table.
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") else None  # musl and macOS have no mallopt


def apply() -> bool:
    """Set glibc's thresholds so that freed large blocks are reused, unless switched off.

    Idempotent and cheap; returns whether the settings are in effect in this process (False when
    ``LARGEGRAPH_ALLOCATOR=system`` or the C library is not glibc).
    """
    global _applied
    if mode() == SYSTEM or _tight_memory():
        _applied = False
        return False
    libc = _libc()
    if libc is None:
        _applied = False
        return False
    ok = all(libc.mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD)))
    _applied = ok
    return ok


# Kept blocks raise a process's resident size to its high-water mark plus fragmentation; where the
# memory a process may use is small (a container or cgroup limit), that margin is an OOM kill. Measured
# here: training under a 640 MiB cgroup, otherwise comfortable, was killed with blocks kept.
MIN_HEADROOM = 4 << 30


def _tight_memory() -> bool:
    from largegraph.core.memory import available_memory

    return available_memory() < MIN_HEADROOM


def applied() -> bool | None:
    """What :func:`apply` last did in this process (None: never called)."""
    return _applied


def worker_init() -> None:
    """For sampler worker processes: forked workers inherit the settings already, spawned ones do not."""
    apply()


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def keeps_freed_blocks(size: int = 64 << 20) -> bool:
    """Measure, in this process, whether a freed block of ``size`` bytes stays with the process.

    Allocates ``size`` bytes with ``malloc``, touches them, frees them and reads the resident size
    from ``/proc/self/status``: True when the memory was not handed back to the kernel. A direct
    read-back of the allocator's behaviour, for tests and ``largegraph bench``'s record.
    """
    libc = _libc()
    if libc is None:
        return False
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    block = libc.malloc(size)
    if not block:
        return False
    ctypes.memset(block, 1, size)
    touched = _rss_bytes()
    libc.free(block)
    return touched - _rss_bytes() < size // 2


def release_free() -> None:
    """Hand the free memory malloc holds back to the kernel (``malloc_trim(0)``), at a phase boundary.

    Keeping freed blocks pays within a phase, where every batch reuses the same sizes; across phases
    it would stack one phase's high-water mark under the next's: the first load's parse (about 7 GB
    at ogbn-products scale) under training, training's blocks under an exact evaluation. Called as
    :func:`system_defaults` begins and ends; a no-op where the C library is not glibc.
    """
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


# glibc's own defaults: 128 KiB thresholds (the mmap threshold then adapts up to 32 MiB), no pad.
_SYSTEM_MMAP_THRESHOLD, _SYSTEM_TRIM_THRESHOLD, _SYSTEM_TOP_PAD = 128 << 10, 128 << 10, 0


@contextlib.contextmanager
def system_defaults() -> Iterator[None]:
    """glibc's defaults for a phase of one-off large arrays, then the kept-blocks settings again.

    A dataset load (OGB's parse, reverse edges, the CSC, the cache write) and an exact layer-wise
    evaluation (chunks of gathered rows whose sizes differ chunk to chunk, beside (N, hidden)
    buffers) reuse nothing batch to batch, so kept blocks only pile up there. Measured at
    ogbn-products scale through ``largegraph train`` (bench/README.md): 17.6 GB peak RSS with blocks
    kept through the load, 14.4 GiB (VmHWM) with them kept through the evaluation alone.
    """
    libc = _libc() if _applied else None
    if libc is not None:
        # What the previous phase freed (training steps' kept blocks) goes back first: kept, it
        # sits under this phase's own peak.
        release_free()
        for param, value in ((_M_MMAP_THRESHOLD, _SYSTEM_MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, _SYSTEM_TRIM_THRESHOLD),
                             (_M_TOP_PAD, _SYSTEM_TOP_PAD)):
            libc.mallopt(param, value)
    try:
        yield
    finally:
        if libc is not None:
            release_free()
            apply()
