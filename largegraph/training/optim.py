"""The optimizer and the learning-rate schedule named by the ``train`` section."""
from __future__ import annotations

import torch

from largegraph.config import TrainConfig


def build_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class Schedule:
    """The learning-rate schedule, stepped once per epoch (``none`` is a schedule that does nothing).

    ``plateau`` decays when the validation score stops improving, so it steps only after epochs
    that were evaluated.
    """

    def __init__(self, cfg: TrainConfig, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self.plateau = cfg.lr_schedule == "plateau"
        sched = torch.optim.lr_scheduler
        if cfg.lr_schedule == "cosine":
            self.scheduler = sched.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
        elif cfg.lr_schedule == "step":
            self.scheduler = sched.StepLR(optimizer, step_size=cfg.lr_step_epochs, gamma=cfg.lr_gamma)
        elif self.plateau:
            self.scheduler = sched.ReduceLROnPlateau(optimizer, mode="max", factor=cfg.lr_gamma, patience=2)
        else:
            self.scheduler = None

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def step(self, valid_score: float | None) -> None:
        """After an epoch; ``valid_score`` is None when the epoch was not evaluated."""
        if self.scheduler is None:
            return
        if self.plateau:
            if valid_score is not None:
                self.scheduler.step(valid_score)
        else:
            self.scheduler.step()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict() if self.scheduler else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scheduler and state:
            self.scheduler.load_state_dict(state)
