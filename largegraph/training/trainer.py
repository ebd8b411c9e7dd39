"""The epoch/step loop shared by every task, and nothing else.

It drives built :class:`~largegraph.training.components.Components` (a model, a ``BatchLoader``, a
``Task``: :mod:`largegraph.training.protocols`), whatever delivers the batches and evaluates, and
reads only the config's ``train`` section.
"""
from __future__ import annotations

import logging
import sys
import time

import torch
from torch import nn
from tqdm.auto import tqdm

from largegraph.core import allocator
from largegraph.training import distributed
from largegraph.training.checkpoint import checkpoint_name, restore_rank_rng
from largegraph.config import TrainConfig
from largegraph.core.errors import Stopped
from largegraph.training.scoring import score_for_selection
from largegraph.training.components import Components
from largegraph.training.protocols import Batch
from largegraph.training.report import epoch_line, resume_lines
from largegraph.core.rng import capture_rng
from largegraph.core.signals import StopRequest
from largegraph.training.totals import EpochTotals

log = logging.getLogger(__name__)


class Trainer:
    """Trains ``components.model`` for ``cfg.epochs``, evaluating, checkpointing and exporting.

    The loop's position is (epoch, batch within the epoch, seeds of the epoch's order consumed by all
    ranks, global step); with the model, optimizer, schedule, weight average, model selection, the
    epoch's running totals and the RNG states it is all in :meth:`state_dict`, so a run resumed from
    any checkpoint, including one taken mid-epoch and with another number of ranks, continues exactly
    as the uninterrupted run would have (the rest of the epoch is re-sharded over the new ranks).

    Data parallel: every rank holds the same model, optimizer and position and trains on its slice of
    every global batch; rank 0 alone evaluates (every rank together for a ``collective`` task), writes
    metrics and checkpoints, and hands its scores to the others, so all agree on the best epoch.
    """

    def __init__(self, cfg: TrainConfig, components: Components, stop: StopRequest | None = None):
        self.cfg = cfg
        self.components = components
        self.dist = components.dist
        self.stop = stop or StopRequest()
        self.check = distributed.DDPCheck(self.dist)
        self.epoch = self.batch = self.offset = self.step = 0
        self.totals = EpochTotals()
        self.elapsed = 0.0  # training seconds of earlier attempts, for a resumed run's total

    def state_dict(self) -> dict:
        c = self.components
        return {"model": c.model.state_dict(), "optimizer": c.optimizer.state_dict(),
                "scheduler": c.schedule.state_dict(), "best_model": c.tracker.best_weights or {},
                "ema": c.average.state_dict(), "rng": capture_rng(),
                "trainer": {"epoch": self.epoch, "batch": self.batch, "offset": self.offset, "step": self.step,
                            "partial": self.totals.state_dict(), "world_size": self.dist.world_size,
                            "elapsed": self.elapsed, **c.tracker.state_dict()}}

    def load_state_dict(self, state: dict) -> None:
        c, t = self.components, state["trainer"]
        c.model.load_state_dict(state["model"])
        c.optimizer.load_state_dict(state["optimizer"])
        c.schedule.load_state_dict(state["scheduler"])
        c.average.load_state_dict(state.get("ema"))
        c.tracker.load_state_dict(t, state["best_model"])
        self.epoch, self.batch, self.step = int(t["epoch"]), int(t["batch"]), int(t["step"])
        self.offset = int(t.get("offset", self.batch * c.loader.batch_size))
        self.totals, self.elapsed = EpochTotals.resumed(t["partial"], self.dist.rank), float(t["elapsed"])
        restore_rank_rng(state, self.dist, c.seed, self.step)

    def resume(self, checkpoint: str | None = None) -> bool:
        """Continue from ``checkpoint`` (a path) or the newest sound one; False if there is none."""
        c = self.components
        found = c.checkpoints.pick(checkpoint)
        if found is None:
            return False
        state, manifest = found
        self.load_state_dict(state)
        record = {"kind": "resume", "step": self.step, "epoch": self.epoch + 1, "batch": self.batch,
                  "offset": self.offset, "checkpoint": checkpoint_name(int(manifest["step"])),
                  "world_size": self.dist.world_size, "saved_world_size": int(state["trainer"].get("world_size", 1))}
        if self.dist.is_main:
            c.run.truncate_metrics(self.step)
            c.run.append_metrics(record)
        for line in resume_lines(record, len(c.loader.seeds)):
            log.info(line)
        return True

    def start_fresh(self) -> None:
        """Begin at step 0, dropping metrics an earlier attempt logged without leaving a checkpoint
        (a crash undid that work, so the log shows each epoch once, as after a resume)."""
        if self.dist.is_main:
            self.components.run.drop_metrics()

    def _save(self, final: bool = False) -> None:
        """Checkpoint (a collective: every rank calls it at the same step; rank 0 writes)."""
        self.totals.gather_on_main(self.dist)
        # The score marks the checkpoint taken right after a new best evaluation (for keep_best).
        best = self.components.tracker
        meta = {"epoch": self.epoch, "batch": self.batch, "score": best.best_score if best.just_improved else None}
        self.components.checkpoints.save(self.step, self.state_dict, meta, final)

    def _step(self, batch: Batch) -> float:
        """One optimizer step; returns the batch's loss."""
        c = self.components
        # bf16 halves the cost of large dense products on CPUs and GPUs with bf16 units; weights,
        # optimizer state and evaluation stay fp32.
        with torch.autocast(c.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"):
            loss, correct = c.task.loss(c.train_model, batch)
        loss = loss.float()
        c.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            nn.utils.clip_grad_norm_(c.model.parameters(), self.cfg.grad_clip)
        c.optimizer.step()
        c.average.update()
        self.step, self.batch, self.offset = self.step + 1, self.batch + 1, batch.offset
        value = float(loss)  # one device sync a step
        self.totals.add_batch(value, batch, correct)
        c.loggers.step(self.step, value, c.schedule.lr, batch.size)
        return value

    def _train_epoch(self) -> dict:
        self.components.train_model.train()
        loader = self.components.loader
        total = self.batch + loader.num_batches(self.offset)
        bar = tqdm(loader.epoch(self.epoch, self.offset), total=total, initial=self.batch, unit="batch",
                   desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", mininterval=1.0, leave=False,
                   # a bar redraws with carriage returns: in a log file (Slurm's output, train.log) each
                   # epoch would be one endless line; the epoch's log line says the same
                   disable=not (self.dist.is_main and sys.stderr.isatty()))
        self.check.start_epoch(self.offset)
        start = time.perf_counter()
        for batch in bar:
            bar.set_postfix(loss=f"{self._step(batch):.4f}", refresh=False)
            self.check.after_step(self.components.model, batch, self.step)
            stop = distributed.any_rank(self.stop.requested, self.dist)
            if stop or self.components.checkpoints.due_in_epoch(self.step, last_batch=self.batch >= total):
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

    def fit(self) -> dict:
        """Train until ``epochs`` or early stopping; write the final artefacts; return the summary."""
        c = self.components
        c.loggers.start(self.step)
        try:
            started, stopped_early = time.perf_counter() - self.elapsed, c.tracker.should_stop()
            while self.epoch < self.cfg.epochs and not stopped_early:
                stopped_early = self._epoch(started)
            if stopped_early:
                log.info(f"early stopping: no better valid_{c.task.metric} for {c.tracker.bad_evals} evaluations")
            self.check.finish()
            # The other ranks are done: rank 0 alone scores (with the others, for a collective task)
            # and writes the final artefacts.
            return self._finish(time.perf_counter() - started) if self.dist.is_main or c.task.collective else {}
        finally:
            c.loggers.close()

    def _epoch(self, started: float) -> bool:
        """Train, evaluate when due, record and checkpoint one epoch; whether to stop early."""
        c, cfg, stopped_early = self.components, self.cfg, False
        c.tracker.forget()
        record = {"kind": "epoch", "epoch": self.epoch + 1, "step": None, "lr": c.schedule.lr, **self._train_epoch()}
        if (self.epoch + 1) % cfg.eval_every == 0 or self.epoch + 1 == cfg.epochs:
            record.update(score_for_selection(c, self.step, self.epoch, outputs=self.epoch + 1 == cfg.epochs))
            stopped_early = c.tracker.should_stop()
        c.schedule.step(record.get(f"valid_{c.task.metric}"))
        self.epoch, self.batch, self.offset, self.totals = self.epoch + 1, 0, 0, EpochTotals()
        record["step"], self.elapsed = self.step, time.perf_counter() - started
        if self.dist.is_main:
            c.run.append_metrics(record)
            c.loggers.epoch(record)
        log.info(epoch_line(record, c.task.metric))
        final = self.epoch == cfg.epochs or stopped_early
        if c.checkpoints.due_after_epoch(self.epoch, final):
            self._save(final=final)
        return stopped_early

    def _finish(self, seconds: float) -> dict:
        c = self.components
        restore = self.cfg.restore_best and c.tracker.best_weights is not None
        c.model.load_state_dict(c.tracker.best_weights if restore else c.average.weights())
        # The final epoch's evaluation already scored these exact weights unless older (best) ones
        # were restored; a full-graph inference is not repeated for nothing.
        with allocator.system_defaults():
            result = c.tracker.fresh_result(self.step, restore) or c.task.evaluate(c.model, c.device)
        if not self.dist.is_main:
            return {}
        return c.export.write(c.model, result, {"best_epoch": c.tracker.best_epoch + 1, "epochs": self.epoch,
                                                "steps": self.step, "time_s": seconds})

