"""An epoch's weights scored for model selection, on the ranks the task needs."""
from __future__ import annotations

from largegraph.core import allocator
from largegraph.training import distributed
from largegraph.training.components import Components
from largegraph.training.selection import split_scores


def score_for_selection(c: Components, step: int, epoch: int, outputs: bool) -> dict:
    """The (weight-averaged) model's scores after ``epoch``, the same on every rank, handed to model
    selection. Rank 0 evaluates and hands its scores to the others; a ``collective`` task evaluates
    on every rank together.

    Args:
        c: the run's components.
        step, epoch: the position the scores belong to.
        outputs: whether the run may end with these weights, so that the export would want every
            node's outputs of the exact evaluation.
    """
    def evaluate() -> dict:
        with c.average.applied():
            # train.validation: sampled scores only the validation split; the final result is exact.
            quick = c.task.selection_scores(c.model, c.device)
            if quick is not None:
                return quick
            result = c.task.evaluate(c.model, c.device, outputs=outputs)
        c.tracker.remember(step, epoch, result)
        return split_scores(result, c.task.metric)

    with allocator.system_defaults():  # evaluation's arrays are one-off: kept blocks would pile up
        scores = evaluate() if c.task.collective else distributed.on_main(evaluate, c.dist)
    c.tracker.update(epoch, scores, c.average.weights)
    return scores
