"""SIGTERM as a request: the trainer checkpoints at the next batch boundary and stops (exit 143).

SIGTERM is what preemption (Slurm, Kubernetes), the job service's drain and torchrun's shutdown of a
worker group send; killing the trainer there would lose the work since the last checkpoint.
"""
from __future__ import annotations

import signal
from typing import Callable


class StopRequest:
    """Set by SIGTERM while installed (``with StopRequest() as stop:``); the trainer polls it.

    A launcher passes the other signals it stops on too, and ``on_request`` to pass the request on
    to its workers at once.
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM,),
                 on_request: Callable[[], None] | None = None) -> None:
        self.requested = False
        self.signals = signals
        self.on_request = on_request
        self._previous: dict = {}

    def _on_signal(self, signum, frame) -> None:
        self.requested = True
        if self.on_request is not None:
            self.on_request()

    def __enter__(self) -> "StopRequest":
        self._previous = {s: signal.signal(s, self._on_signal) for s in self.signals}
        return self

    def reclaim(self) -> None:
        """Take SIGTERM back from a library that installed its own handler (DGL's RPC exits on it)."""
        signal.signal(signal.SIGTERM, self._on_signal)

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
