"""The weight average that evaluation, best-model selection and model.pt use (``train.ema_decay``)."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn


class WeightAverage:
    """An exponential moving average of ``model``'s weights, updated after every optimizer step.

    With ``decay=None`` it is off: :meth:`weights` are the model's own and :meth:`applied` changes
    nothing, so callers need not ask which.
    """

    def __init__(self, model: nn.Module, decay: float | None):
        self.model = model
        self.decay = decay
        self.average: dict[str, torch.Tensor] | None = None
        if decay is not None:
            self.average = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self) -> None:
        if self.average is None:
            return
        weight = 1.0 - self.decay
        for name, value in self.model.state_dict().items():
            average = self.average[name]
            if average.is_floating_point():
                average.lerp_(value.to(average.dtype), weight)
            else:
                average.copy_(value)  # counters (batch-norm's num_batches_tracked) are not averaged

    def weights(self) -> dict[str, torch.Tensor]:
        """The weights a run reports: the average when on, the model's own otherwise."""
        return self.average if self.average is not None else self.model.state_dict()

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block and its trained ones after it."""
        if self.average is None:
            yield
            return
        trained = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.average)
        try:
            yield
        finally:
            self.model.load_state_dict(trained)

    def state_dict(self) -> dict:
        return self.average or {}

    def load_state_dict(self, saved: dict) -> None:
        """Continue ``saved``; a run that turns averaging on when resumed starts it at the current weights."""
        if self.average is None:
            return
        saved = saved or self.model.state_dict()
        self.average = {k: saved[k].detach().clone().to(v.device) for k, v in self.model.state_dict().items()}
