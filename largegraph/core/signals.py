"""SIGTERM as a request: the trainer checkpoints at the next batch boundary and stops (exit 143).

SIGTERM is what preemption (Slurm, Kubernetes), the job service's drain and torchrun's shutdown of a
worker group send; killing the trainer there would lose the work since the last checkpoint.
"""
from __future__ import annotations

import signal


class StopRequest:
    """Set by SIGTERM while installed (``with StopRequest() as stop:``); the trainer polls it."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _on_signal(self, signum, frame) -> None:
        self.requested = True

    def __enter__(self) -> "StopRequest":
        self._previous = signal.signal(signal.SIGTERM, self._on_signal)
        return self

    def reclaim(self) -> None:
        """Take SIGTERM back from a library that installed its own handler (DGL's RPC exits on it)."""
        signal.signal(signal.SIGTERM, self._on_signal)

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGTERM, self._previous)
