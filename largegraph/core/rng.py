"""Seeds and random-number state: what makes a run repeatable and its resume exact.

Every random stream of a run is either derived from the job seed and the run's position (epoch
orders, DGL's per-batch sampling, negatives: see :func:`mix_seed`) or captured in checkpoints
(torch's, Python's and NumPy's global generators: see :func:`capture_rng`).
"""
from __future__ import annotations

import random

import numpy as np
import torch

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: spreads nearby integers far apart
_MASK = (1 << 63) - 1


def mix_seed(*parts: int) -> int:
    """Deterministic 63-bit seed from integers (Python's hash() is salted per process)."""
    h = 0
    for part in parts:
        h = ((h ^ (int(part) & _MASK)) * _MIX + 0x632BE59BD9B4E019) & _MASK
        h ^= h >> 29
    return h


def seed_everything(seed: int) -> None:
    """Seed torch's, Python's and NumPy's global generators."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def capture_rng() -> dict:
    """Every global RNG that affects a run, in a form ``torch.load(weights_only=True)`` accepts.

    DGL's sampling needs no state: it is re-seeded per batch from (seed, epoch, batch).
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]}


def restore_rng(state: dict) -> None:
    """Put back what :func:`capture_rng` captured."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
