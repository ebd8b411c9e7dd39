"""The epoch/step loop shared by every task, and nothing else.

The trainer takes built objects (see :mod:`largegraph.training.run`, which assembles them from the config):
a model, a loader whose ``epoch(e, start)`` yields batch records (local graph, worker processes or a
DistGraph: the loader's business), a task for the loss and the evaluation, and the owners of the
checkpoints, the weight average, model selection and the final export. It reads only ``train``.
"""
from __future__ import annotations

import sys
import time
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from largegraph.core import allocator
from largegraph.training import distributed
from largegraph.training.checkpoint import checkpoint_name
from largegraph.config import TrainConfig
from largegraph.training.distributed import DDPCheck
from largegraph.core.errors import Stopped
from largegraph.training.selection import split_scores
from largegraph.training.components import Parts
from largegraph.training.report import epoch_line
from largegraph.core.rng import capture_rng, mix_seed, restore_rng, seed_everything
from largegraph.core.signals import StopRequest
from largegraph.training.totals import EpochTotals


def _batch_work(batch) -> tuple[int, int]:
    """A batch record's input nodes and message-passing edges (zero for records without blocks)."""
    nodes = getattr(batch, "input_nodes", None)
    blocks = getattr(batch, "blocks", None) or []
    return (len(nodes) if nodes is not None else 0), sum(b.num_edges() for b in blocks)


class Trainer:
    """Trains ``parts.model`` for ``cfg.epochs``, evaluating, checkpointing and exporting.

    The loop's position is (epoch, batch within the epoch, seeds of the epoch's order consumed by all
    ranks, global step); with the model, optimizer, schedule, weight average, model selection, the
    epoch's running totals and the RNG states it is all in :meth:`state_dict`, so a run resumed from
    any checkpoint, including one taken mid-epoch and with another number of ranks, continues exactly
    as the uninterrupted run would have (the rest of the epoch is re-sharded over the new ranks).

    Data parallel: every rank holds the same model, optimizer and position and trains on its slice
    of every global batch; rank 0 alone evaluates, writes metrics and checkpoints, and hands its
    scores to the others, so all agree on the best epoch and on early stopping.
    """

    def __init__(self, cfg: TrainConfig, parts: Parts, stop: StopRequest | None = None,
                 log: Callable[[str], None] | None = None):
        self.cfg = cfg
        self.p = parts
        self.dist = parts.dist
        self.stop = stop or StopRequest()
        self.log = log or (lambda line: tqdm.write(line, file=sys.stdout))
        self.check = DDPCheck(self.dist, self.log)
        self.epoch = self.batch = self.offset = self.step = 0
        self.totals = EpochTotals()
        self.elapsed = 0.0  # training seconds of earlier attempts, for a resumed run's total

    # --- resumable state -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        p = self.p
        return {"model": p.model.state_dict(), "optimizer": p.optimizer.state_dict(),
                "scheduler": p.schedule.state_dict(), "best_model": p.tracker.best_weights or {},
                "ema": p.average.state_dict(), "rng": capture_rng(),
                "trainer": {"epoch": self.epoch, "batch": self.batch, "offset": self.offset, "step": self.step,
                            "partial": self.totals.state_dict(), "world_size": self.dist.world_size,
                            "elapsed": self.elapsed, **p.tracker.state_dict()}}

    def load_state_dict(self, state: dict) -> None:
        p, t = self.p, state["trainer"]
        p.model.load_state_dict(state["model"])
        p.optimizer.load_state_dict(state["optimizer"])
        p.schedule.load_state_dict(state["scheduler"])
        p.average.load_state_dict(state.get("ema"))
        p.tracker.load_state_dict(t, state["best_model"])
        self.epoch, self.batch, self.step = int(t["epoch"]), int(t["batch"]), int(t["step"])
        self.offset = int(t.get("offset", self.batch * p.loader.batch_size))
        self.totals, self.elapsed = EpochTotals.resumed(t["partial"], self.dist.rank), float(t["elapsed"])
        ranks = state.get("rng_ranks") or [state["rng"]]
        if len(ranks) == self.dist.world_size or self.dist.rank == 0:
            restore_rng(ranks[self.dist.rank] if len(ranks) == self.dist.world_size else state["rng"])
        else:  # a rank the saved run did not have: a fresh stream, still a function of the position
            seed_everything(mix_seed(self.p.seed, self.dist.rank, self.step))

    def resume(self, checkpoint: str | None = None) -> bool:
        """Continue from ``checkpoint`` (a path) or the newest sound one; False if there is none."""
        found = self.p.checkpoints.pick(checkpoint)
        if found is None:
            return False
        state, manifest = found
        self.load_state_dict(state)
        saved_world, name = int(state["trainer"].get("world_size", 1)), checkpoint_name(int(manifest["step"]))
        if self.dist.is_main:
            self.p.run.truncate_metrics(self.step)
            self.p.run.append_metrics({"kind": "resume", "step": self.step, "epoch": self.epoch + 1,
                                       "batch": self.batch, "offset": self.offset, "checkpoint": name,
                                       "world_size": self.dist.world_size, "saved_world_size": saved_world})
        self.log(f"resumed from checkpoint {name}: epoch {self.epoch + 1}, batch {self.batch}, step {self.step}")
        if saved_world != self.dist.world_size and self.offset:
            self.log(f"the checkpoint was written by {saved_world} worker(s), this run has {self.dist.world_size}: "
                     f"epoch {self.epoch + 1} goes on from seed {self.offset} of {len(self.p.loader.seeds)} of its "
                     f"order, the rest re-sharded over the new workers (no seed skipped or repeated)")
        return True

    def start_fresh(self) -> None:
        """Begin at step 0, dropping metrics an earlier attempt logged without leaving a checkpoint
        (a crash undid that work, so the log shows each epoch once, as after a resume)."""
        if self.dist.is_main:
            self.p.run.drop_metrics()

    def _save(self, final: bool = False) -> None:
        """Checkpoint (a collective: every rank calls it at the same step; rank 0 writes)."""
        self.totals.gather_on_main(self.dist)
        rngs = distributed.gather(capture_rng(), self.dist) if self.dist.enabled else None
        # The score marks the checkpoint taken right after a new best evaluation (for keep_best).
        tracker = self.p.tracker
        meta = {"epoch": self.epoch, "batch": self.batch, "score": tracker.best_score if tracker.just_improved else None}
        state = (lambda: {**self.state_dict(), "rng_ranks": rngs}) if rngs else self.state_dict
        self.p.checkpoints.save(self.step, state, meta, final)

    # --- the loop ----------------------------------------------------------------------------------
    def _step(self, batch) -> float:
        """One optimizer step; returns the batch's loss."""
        p = self.p
        # bf16 halves the cost of large dense products on CPUs and GPUs with bf16 units; weights,
        # optimizer state and evaluation stay fp32.
        with torch.autocast(p.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"):
            loss, correct = p.task.loss(p.train_model, batch)
        loss = loss.float()
        p.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            nn.utils.clip_grad_norm_(p.model.parameters(), self.cfg.grad_clip)
        p.optimizer.step()
        p.average.update()
        self.step, self.batch, self.offset = self.step + 1, self.batch + 1, batch.offset
        value = float(loss)  # one device sync a step
        self.totals.add(value, batch.size, correct, *_batch_work(batch))
        p.loggers.step(self.step, value, p.schedule.lr, batch.size)
        return value

    def _train_epoch(self) -> dict:
        self.p.train_model.train()
        loader = self.p.loader
        total = self.batch + loader.num_batches(self.offset)
        bar = tqdm(loader.epoch(self.epoch, self.offset), total=total, initial=self.batch, unit="batch",
                   desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", mininterval=1.0, leave=False,
                   disable=not self.dist.is_main)
        self.check.start_epoch(self.offset)
        start = time.perf_counter()
        for batch in bar:
            bar.set_postfix(loss=f"{self._step(batch):.4f}", refresh=False)
            self.check.after_step(self.p.model, batch, self.step)
            stop = distributed.any_rank(self.stop.requested, self.dist)
            if stop or self.p.checkpoints.due_in_epoch(self.step, last_batch=self.batch >= total):
                now = time.perf_counter()
                self.totals.add_seconds(now - start)
                start = now
                self._save()
                if stop:
                    raise Stopped(f"stopped on SIGTERM after writing checkpoint {checkpoint_name(self.step)} "
                                  f"(epoch {self.epoch + 1}, batch {self.batch}); rerun with --resume auto to continue")
        self.totals.add_seconds(time.perf_counter() - start)
        self.check.after_epoch(self.epoch, self.offset, loader.seeds)
        self.totals.gather_on_main(self.dist)
        return self.totals.record(self.dist)

    def train_one_epoch(self, epoch: int) -> dict:
        """Train epoch ``epoch`` from its start, outside :meth:`fit` (benchmarks time the loop alone)."""
        self.epoch, self.batch, self.offset, self.totals = epoch, 0, 0, EpochTotals()
        return {**self._train_epoch(), "batches": self.totals.values["batches"]}

    def _evaluate(self, outputs: bool) -> dict:
        """Full-graph evaluation on rank 0; its scores reach every rank. ``outputs``: whether the run
        may end with these weights, so that the export would want every node's outputs."""
        p = self.p

        def evaluate() -> dict:
            with p.average.applied():
                # train.validation: sampled scores only the validation split; the final result is exact.
                quick = getattr(p.task, "selection_scores", lambda model, device: None)(p.model, p.device)
                if quick is not None:
                    return quick
                result = p.task.evaluate(p.model, p.device, outputs=outputs)
            p.tracker.remember(self.step, self.epoch, result)
            return split_scores(result, p.task.metric)

        with allocator.system_defaults():  # evaluation's arrays are one-off: kept blocks would pile up
            # a collective task (DGL's engine) evaluates on every rank together
            scores = evaluate() if self._collective else distributed.on_main(evaluate, self.dist)
        p.tracker.update(self.epoch, scores, p.average.weights)
        return scores

    def fit(self) -> dict:
        """Train until ``epochs`` or early stopping; write the final artefacts; return the summary."""
        p, cfg = self.p, self.cfg
        started = time.perf_counter() - self.elapsed
        stopped_early = p.tracker.should_stop()
        p.loggers.start(self.step)
        try:
            return self._fit(started, stopped_early)
        finally:
            p.loggers.close()

    def _fit(self, started: float, stopped_early: bool) -> dict:
        p, cfg = self.p, self.cfg
        while self.epoch < cfg.epochs and not stopped_early:
            p.tracker.forget()
            record = {"kind": "epoch", "epoch": self.epoch + 1, "step": None, "lr": p.schedule.lr,
                      **self._train_epoch()}
            if (self.epoch + 1) % cfg.eval_every == 0 or self.epoch + 1 == cfg.epochs:
                record.update(self._evaluate(outputs=self.epoch + 1 == cfg.epochs))
                stopped_early = p.tracker.should_stop()
            p.schedule.step(record.get(f"valid_{p.task.metric}"))
            self.epoch, self.batch, self.offset, self.totals = self.epoch + 1, 0, 0, EpochTotals()
            record["step"], self.elapsed = self.step, time.perf_counter() - started
            if self.dist.is_main:
                p.run.append_metrics(record)
                p.loggers.epoch(record)
            self.log(epoch_line(record, p.task.metric))
            final = self.epoch == cfg.epochs or stopped_early
            if p.checkpoints.due_after_epoch(self.epoch, final):
                self._save(final=final)
        if stopped_early:
            self.log(f"early stopping: no better valid_{p.task.metric} for {p.tracker.bad_evals} evaluations")
        self.check.finish()
        # The other ranks are done: rank 0 alone scores (with the others, for a collective task)
        # and writes the final artefacts.
        if self.dist.is_main or self._collective:
            return self._finish(time.perf_counter() - started)
        return {}

    @property
    def _collective(self) -> bool:
        """Whether the task's evaluation needs every rank (inference over a DistGraph)."""
        return bool(getattr(self.p.task, "collective", False))

    def _finish(self, seconds: float) -> dict:
        p = self.p
        restore = self.cfg.restore_best and p.tracker.best_weights is not None
        p.model.load_state_dict(p.tracker.best_weights if restore else p.average.weights())
        # The final epoch's evaluation already scored these exact weights unless older (best) ones
        # were restored; a full-graph inference is not repeated for nothing.
        with allocator.system_defaults():
            result = p.tracker.fresh_result(self.step, restore) or p.task.evaluate(p.model, p.device)
        if not self.dist.is_main:
            return {}
        return p.export.write(p.model, result, {"best_epoch": p.tracker.best_epoch + 1, "epochs": self.epoch,
                                                "steps": self.step, "time_s": seconds})

