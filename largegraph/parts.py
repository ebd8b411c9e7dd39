"""The built objects one training run is made of: what :mod:`largegraph.train` assembles and the
:class:`~largegraph.trainer.Trainer` drives."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from largegraph.averaging import WeightAverage
from largegraph.checkpoint import CheckpointManager
from largegraph.distributed import DistEnv
from largegraph.evaluation import EvalTracker
from largegraph.export import RunExport
from largegraph.loggers import RunLoggers
from largegraph.optim import Schedule
from largegraph.rundir import RunDir


@dataclass
class Parts:
    """What a run is made of, built by :func:`largegraph.train.assemble`.

    ``train_model`` is ``model`` itself, or its DDP wrapper with several ranks.
    """

    model: nn.Module
    train_model: nn.Module
    loader: object
    task: object
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
