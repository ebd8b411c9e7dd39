"""The optimizer and the learning-rate schedule named by the ``train`` section."""
from __future__ import annotations

import math

import torch

from largegraph.config import TrainConfig


def build_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else SlicedAdam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class SlicedAdam(torch.optim.Adam):
    """:class:`torch.optim.Adam`, bitwise, with large CPU tensors updated in cache-sized slices on one thread.

    torch's CPU Adam makes about ten passes over every tensor (moments, square root, division,
    update), each through memory; on a featureless type's table (ogbn-mag's authors: 1M x 128 at full
    scale, updated every step) that was the dearest part of a typed step. The same element-wise ops on
    slices that stay in cache cost a third. The state (``step``, ``exp_avg``, ``exp_avg_sq``) is
    Adam's, so checkpoints are unchanged; other tensors and settings take Adam's own step.
    """

    SLICE = 1 << 14
    MIN_NUMEL = 1 << 20

    def _sliced(self, group: dict, p: torch.Tensor) -> bool:
        g = p.grad
        return (g is not None and p.device.type == "cpu" and p.numel() >= self.MIN_NUMEL and not g.is_sparse
                and p.is_contiguous() and g.is_contiguous() and not torch.is_complex(p)
                and not isinstance(group["lr"], torch.Tensor)
                and not any(group.get(k) for k in ("amsgrad", "maximize", "capturable", "differentiable", "fused")))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        held = []
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # slices this small lose more to thread hand-offs than they gain
        try:
            for group in self.param_groups:
                for p in group["params"]:
                    if self._sliced(group, p):
                        self._update(group, p)
                        held.append((p, p.grad))
                        p.grad = None  # Adam's own step skips it
        finally:
            torch.set_num_threads(threads)
        try:
            super().step()
        finally:
            for p, g in held:
                p.grad = g
        return loss

    def _update(self, group: dict, p: torch.Tensor) -> None:
        """Adam's single-tensor update of ``p``, the same ops in the same order, slice by slice."""
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0, dtype=torch.float64 if torch.get_default_dtype() == torch.float64
                                         else torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        step = state["step"].item()
        (beta1, beta2), lr, eps, decay = group["betas"], group["lr"], group["eps"], group["weight_decay"]
        step_size = lr / (1 - beta1 ** step)
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
        flat = [t.view(-1) for t in (p, p.grad, state["exp_avg"], state["exp_avg_sq"])]
        for start in range(0, p.numel(), self.SLICE):
            param, grad, exp_avg, exp_avg_sq = (t[start:start + self.SLICE] for t in flat)
            if decay != 0:
                grad = grad.add(param, alpha=decay)
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            param.addcdiv_(exp_avg, (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps), value=-step_size)


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
