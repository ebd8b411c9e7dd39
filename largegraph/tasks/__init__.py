"""Tasks: the loss and the evaluation on top of any encoder; one ``task:`` key picks one.

A task is what :class:`largegraph.training.protocols.Task` says the trainer calls: ``metric``,
``collective``, ``loss``, ``selection_scores``, ``evaluate``, ``predictions`` and ``embeddings_of``.
The exact evaluation of a graph no process holds (DGL's engine) is an :class:`ExactEvaluation`
handed to the same task when it is built; the loss is the task's, whatever evaluates it.
"""
from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn


class ExactEvaluation(Protocol):
    """How a task's exact evaluation runs when not over a graph in this process.

    ``collective``: every rank calls :meth:`evaluate` together.
    """

    collective: bool

    def evaluate(self, task: Any, model: nn.Module, device: torch.device, progress: bool,
                 outputs: bool) -> dict:
        """``task``'s scores of every split (and, with ``outputs``, what :meth:`predictions` needs)."""

    def predictions(self, result: dict) -> dict:
        """What predictions.pt holds, in the dataset's node ids."""

    def embeddings_of(self, result: dict) -> torch.Tensor:
        """Every node's embedding, in the dataset's node ids."""
