"""Where a job's data, loaders and task come from: this process (local) or DGL's engine (distdgl).

Each backend implements :class:`largegraph.training.protocols.Backend`; :func:`backend_for` is the one
place a job's ``distributed.mode`` picks one. Nothing else asks which backend a job runs on.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from largegraph.config import JobConfig

if TYPE_CHECKING:  # the launchers import backends.distdgl's torch-free modules, and so this package
    from largegraph.training.protocols import Backend


def backend_for(cfg: JobConfig) -> Backend:
    """The backend ``cfg.distributed.mode`` names (DGL's engine is imported only when asked for)."""
    if cfg.distributed.mode == "distdgl":
        from largegraph.backends.distdgl.backend import DistDGLBackend

        return DistDGLBackend()
    from largegraph.backends.local import LocalBackend

    return LocalBackend()


__all__ = ["backend_for"]
