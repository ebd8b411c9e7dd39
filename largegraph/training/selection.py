"""Model selection: which evaluation was best, its weights, and when to stop early."""
from __future__ import annotations

import copy
import math
from typing import Callable


class EvalTracker:
    """Keeps the best validation score, the epoch it came from and (optionally) its weights, and
    counts evaluations without improvement for early stopping.

    Args:
        metric: the task's metric (scores are ``valid_<metric>``, higher is better).
        patience: stop after this many evaluations without a better score; None: never.
        keep_weights: hold a CPU copy of the best weights (only the rank that writes model.pt needs it).
    """

    def __init__(self, metric: str, patience: int | None = None, keep_weights: bool = True):
        self.metric = metric
        self.patience = patience
        self.keep_weights = keep_weights
        self.best_score = -math.inf
        self.best_epoch = -1
        self.best_weights: dict | None = None
        self.bad_evals = 0
        self.just_improved = False
        # (step, full result, epoch) of the newest evaluation; never held across epochs
        self.last: tuple[int, dict, int] | None = None

    def update(self, epoch: int, scores: dict, weights: Callable[[], dict]) -> None:
        """Compare one evaluation's scores (the same on every rank) with the best so far."""
        score = scores[f"valid_{self.metric}"]
        self.just_improved = score > self.best_score
        if self.just_improved:
            self.best_score, self.best_epoch, self.bad_evals = score, epoch, 0
            if self.keep_weights:
                self.best_weights = copy.deepcopy({k: v.cpu() for k, v in weights().items()})
        else:
            self.bad_evals += 1

    def remember(self, step: int, epoch: int, result: dict) -> None:
        """The newest full evaluation, so the final export need not repeat it for the same weights."""
        self.last = (step, result, epoch)

    def forget(self) -> None:
        """Drop the newest evaluation's full outputs (never held while training) and the improvement mark."""
        self.last = None
        self.just_improved = False

    def fresh_result(self, step: int, restored_best: bool) -> dict | None:
        """The newest evaluation's result if it scored the weights the run ends with, else None."""
        if self.last is None or self.last[0] != step or self.last[1].get("scores_only"):
            return None
        if restored_best and self.last[2] != self.best_epoch:
            return None
        return self.last[1]

    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_evals >= self.patience

    def state_dict(self) -> dict:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "bad_evals": self.bad_evals}

    def load_state_dict(self, state: dict, best_weights: dict | None) -> None:
        self.best_score, self.best_epoch = float(state["best_score"]), int(state["best_epoch"])
        self.bad_evals = int(state["bad_evals"])
        self.best_weights = best_weights or None


def split_scores(result: dict, metric: str) -> dict:
    """The three split scores of a task's evaluation result."""
    return {k: result[k] for k in (f"train_{metric}", f"valid_{metric}", f"test_{metric}")}

