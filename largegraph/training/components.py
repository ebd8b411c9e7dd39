"""The built objects one training run is made of: what :mod:`largegraph.training.assembly` builds and the
:class:`~largegraph.training.trainer.Trainer` drives."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from largegraph.training.averaging import WeightAverage
from largegraph.training.checkpoint import CheckpointManager
from largegraph.training.distributed import DistEnv
from largegraph.training.selection import EvalTracker
from largegraph.training.export import RunExport
from largegraph.training.loggers import RunLoggers
from largegraph.training.optim import Schedule
from largegraph.training.protocols import BatchLoader, Task
from largegraph.training.rundir import RunDir


@dataclass
class Components:
    """What a run is made of, built by :func:`largegraph.training.assembly.assemble`.

    ``train_model`` is ``model`` itself, or its DDP wrapper with several ranks.
    """

    model: nn.Module
    train_model: nn.Module
    loader: BatchLoader
    task: Task
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    average: WeightAverage
    tracker: EvalTracker
    checkpoints: CheckpointManager
    export: RunExport
    run: RunDir
    device: torch.device
    seed: int = 0
    dist: DistEnv = field(default_factory=DistEnv)
    loggers: RunLoggers = field(default_factory=RunLoggers)  # train.loggers besides metrics.jsonl
