"""The epoch/step loop shared by every task.

The trainer knows nothing about graphs: a task gives it a model, a loader whose ``epoch(e)`` yields
mini-batches, a loss and an evaluation. Whether batches come from a local graph, worker processes or
(later) a DistGraph is the loader's business.
"""
from __future__ import annotations

import copy
import math
import random
import sys
import time
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from largegraph.checkpoint import CheckpointStore, save_tensors
from largegraph.errors import CheckpointError
from largegraph.config import JobConfig, TrainConfig
from largegraph.report import plot_curves
from largegraph.rundir import RunDir


def build_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer):
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step_epochs, gamma=cfg.lr_gamma)
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=cfg.lr_gamma, patience=2)
    return None


def capture_rng() -> dict:
    """Every RNG that affects a run, in a form ``torch.load(weights_only=True)`` accepts.

    DGL's sampling needs no state: it is re-seeded per batch from (seed, epoch, batch).
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]}


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


def _fresh_partial() -> dict:
    return {"loss_sum": 0.0, "correct": 0, "seen": 0, "batches": 0, "seconds": 0.0}


class Trainer:
    """Trains ``task``'s model and writes everything into ``run``.

    The loop's position is (epoch, batch within the epoch, global step); together with the model,
    optimizer, scheduler, early-stopping state, the epoch's running totals and the RNG states it is
    all in :meth:`state_dict`, so a run resumed from any checkpoint, including one taken mid-epoch,
    continues exactly as the uninterrupted run would have.

    Args:
        cfg: the job config.
        task: a task object (see ``largegraph.tasks``).
        run: the run directory (already created).
        device: where the model and batches live.
        log: where progress lines go (stdout by default).
    """

    def __init__(self, cfg: JobConfig, task, run: RunDir, device: torch.device,
                 log: Callable[[str], None] | None = None):
        self.cfg = cfg
        self.task = task
        self.run = run
        self.device = device
        self.log = log or (lambda line: tqdm.write(line, file=sys.stdout))
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        self.model: nn.Module = task.build_model().to(device)
        self.optimizer = build_optimizer(cfg.train, self.model.parameters())
        self.scheduler = build_scheduler(cfg.train, self.optimizer)
        self.loader = task.train_loader(device)
        ck = cfg.checkpoint
        self.store = CheckpointStore(run.checkpoints, cfg.fingerprint(), run.run_id(), ck.keep_last, ck.keep_best)
        self.epoch = 0  # current epoch
        self.batch = 0  # next batch within the current epoch
        self.step = 0
        self.partial = _fresh_partial()
        self.best_score = -math.inf
        self.best_epoch = -1
        self.best_state: dict | None = None
        self.bad_evals = 0
        self.elapsed = 0.0  # training seconds of earlier attempts, for a resumed run's total
        self._just_improved = False
        self._last_eval: tuple[int, dict] | None = None
        self._last_eval_epoch = -1

    # --- resumable state -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else {},
            "best_model": self.best_state or {},
            "rng": capture_rng(),
            "trainer": {"epoch": self.epoch, "batch": self.batch, "step": self.step, "partial": dict(self.partial),
                        "best_score": self.best_score, "best_epoch": self.best_epoch,
                        "bad_evals": self.bad_evals, "elapsed": self.elapsed},
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler and state["scheduler"]:
            self.scheduler.load_state_dict(state["scheduler"])
        self.best_state = state["best_model"] or None
        t = state["trainer"]
        self.epoch, self.batch, self.step = int(t["epoch"]), int(t["batch"]), int(t["step"])
        self.partial = dict(t["partial"])
        self.bad_evals, self.best_epoch = int(t["bad_evals"]), int(t["best_epoch"])
        self.best_score, self.elapsed = float(t["best_score"]), float(t["elapsed"])
        restore_rng(state["rng"])

    def resume(self, checkpoint: str | None = None) -> bool:
        """Continue from ``checkpoint`` (a path) or, if None, the newest one that verifies.

        Returns:
            False when there is no checkpoint to resume from.
        Raises:
            CheckpointError: a named checkpoint is corrupt, foreign, or for another config.
        """
        if checkpoint is not None:
            state, manifest = self.store.load(self.store.resolve(checkpoint))
        else:
            found = self.store.latest(warn=lambda msg: print(f"largegraph: warning: {msg}", file=sys.stderr))
            if found is None:
                return False
            state, manifest = found
        self.load_state_dict(state)
        self.run.truncate_metrics(self.step)
        self.run.append_metrics({"kind": "resume", "step": self.step, "epoch": self.epoch + 1, "batch": self.batch,
                                 "checkpoint": f"step-{int(manifest['step']):010d}"})
        self.log(f"resumed from checkpoint step-{int(manifest['step']):010d}: epoch {self.epoch + 1}, "
                 f"batch {self.batch}, step {self.step}")
        return True

    def _save(self, final: bool = False) -> None:
        # The score marks the checkpoint taken right after a new best evaluation (for keep_best).
        meta = {"epoch": self.epoch, "batch": self.batch, "score": self.best_score if self._just_improved else None}
        try:
            self.store.save(self.step, self.state_dict(), meta)
        except CheckpointError as exc:
            if self.cfg.checkpoint.on_save_error == "fail" or final:
                raise
            print(f"largegraph: warning: {exc}; training goes on (checkpoint.on_save_error=continue)",
                  file=sys.stderr)

    # --- the loop ----------------------------------------------------------------------------------
    def _train_epoch(self) -> dict:
        self.model.train()
        p = self.partial
        every = self.cfg.checkpoint.every_n_steps
        total = self.loader.num_batches()
        bar = tqdm(self.loader.epoch(self.epoch, self.batch), total=total, initial=self.batch, unit="batch",
                   desc=f"epoch {self.epoch + 1}/{self.cfg.train.epochs}", mininterval=1.0, leave=False)
        start = time.perf_counter()
        for batch in bar:
            loss, batch_correct = self.task.loss(self.model, batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.train.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
            self.optimizer.step()
            self.step += 1
            self.batch += 1
            p["batches"] += 1
            p["loss_sum"] += float(loss) * batch.size
            p["correct"] += batch_correct
            p["seen"] += batch.size
            bar.set_postfix(loss=f"{float(loss):.4f}", refresh=False)
            if every and self.step % every == 0 and self.batch < total:
                now = time.perf_counter()
                p["seconds"] += now - start
                start = now
                self._save()
        p["seconds"] += time.perf_counter() - start
        seconds, seen = p["seconds"], max(p["seen"], 1)
        return {"loss": p["loss_sum"] / seen, "batch_train_acc": p["correct"] / seen,
                "time_s": seconds, "batches_per_s": p["batches"] / max(seconds, 1e-9),
                "nodes_per_s": p["seen"] / max(seconds, 1e-9)}

    def _evaluate(self, epoch: int) -> dict:
        result = self.task.evaluate(self.model, self.device)
        self._last_eval, self._last_eval_epoch = (self.step, result), epoch
        metric = self.task.metric
        score = result[f"valid_{metric}"]
        self._just_improved = score > self.best_score
        if self._just_improved:
            self.best_score, self.best_epoch, self.bad_evals = score, epoch, 0
            self.best_state = copy.deepcopy({k: v.cpu() for k, v in self.model.state_dict().items()})
        else:
            self.bad_evals += 1
        return {k: result[k] for k in (f"train_{metric}", f"valid_{metric}", f"test_{metric}")}

    def _should_stop(self) -> bool:
        patience = self.cfg.train.early_stopping_patience
        return patience is not None and self.bad_evals >= patience

    def fit(self) -> dict:
        """Train until ``train.epochs`` or early stopping; write final artefacts; return the summary."""
        tc = self.cfg.train
        started = time.perf_counter() - self.elapsed
        stopped_early = self._should_stop()
        while self.epoch < tc.epochs and not stopped_early:
            epoch = self.epoch
            self._last_eval = None  # full-graph outputs: never held while training
            self._just_improved = False
            lr = self.optimizer.param_groups[0]["lr"]
            record = {"kind": "epoch", "epoch": epoch + 1, "step": None, "lr": lr, **self._train_epoch()}
            evaluated = (epoch + 1) % tc.eval_every == 0 or epoch + 1 == tc.epochs
            if evaluated:
                record.update(self._evaluate(epoch))
                stopped_early = self._should_stop()
            self._step_scheduler(record)
            self.epoch, self.batch, self.partial = epoch + 1, 0, _fresh_partial()
            record["step"] = self.step
            self.elapsed = time.perf_counter() - started
            self.run.append_metrics(record)
            self.log(self._epoch_line(record))
            if self.epoch % self.cfg.checkpoint.every_n_epochs == 0 or self.epoch == tc.epochs or stopped_early:
                self._save(final=self.epoch == tc.epochs or stopped_early)
        if stopped_early:
            self.log(f"early stopping: no better valid_{self.task.metric} for {self.bad_evals} evaluations")
        return self._finish(time.perf_counter() - started)

    def _step_scheduler(self, record: dict) -> None:
        if self.scheduler is None:
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            key = f"valid_{self.task.metric}"
            if key in record:
                self.scheduler.step(record[key])
        else:
            self.scheduler.step()

    def _epoch_line(self, r: dict) -> str:
        m = self.task.metric
        parts = [f"epoch {r['epoch']:>3}", f"loss {r['loss']:.4f}"]
        for part in ("train", "valid", "test"):
            if r.get(f"{part}_{m}") is not None:
                parts.append(f"{part}_{m} {r[f'{part}_{m}']:.4f}")
        parts.append(f"{r['time_s']:.1f}s ({r['batches_per_s']:.1f} batches/s, {r['nodes_per_s']:.0f} nodes/s)")
        return "  ".join(parts)

    def _finish(self, seconds: float) -> dict:
        last = self._last_eval
        restore = self.cfg.train.restore_best and self.best_state is not None
        if restore:
            self.model.load_state_dict(self.best_state)
        # The final epoch's evaluation already scored these exact weights unless older (best) ones
        # were restored; a full-graph inference is not repeated for nothing.
        fresh = last is not None and last[0] == self.step and not (restore and self._last_eval_epoch != self.best_epoch)
        result = last[1] if fresh else self.task.evaluate(self.model, self.device)
        m = self.task.metric
        save_tensors(self.run.model_path, {k: v.cpu() for k, v in self.model.state_dict().items()})
        save_tensors(self.run.predictions_path, self.task.predictions(result))
        if self.cfg.train.export_embeddings:
            save_tensors(self.run.embeddings_path, result["emb"])
        summary = {
            "metric": m, f"test_{m}": result[f"test_{m}"], f"valid_{m}": result[f"valid_{m}"],
            f"train_{m}": result[f"train_{m}"], "best_epoch": self.best_epoch + 1,
            "epochs": self.epoch, "steps": self.step, "time_s": seconds, "run_dir": str(self.run.path),
        }
        self.run.append_metrics({"kind": "final", **summary})
        self.run.write_summary(summary)
        plot_curves(self.run, m)
        return summary
