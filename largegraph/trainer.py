"""The epoch/step loop shared by every task.

The trainer knows nothing about graphs: a task gives it a model, a loader whose ``epoch(e)`` yields
mini-batches, a loss and an evaluation. Whether batches come from a local graph, worker processes or
(later) a DistGraph is the loader's business.
"""
from __future__ import annotations

import copy
import math
import sys
import time
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from largegraph.checkpoint import CheckpointStore, save_tensors
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


class Trainer:
    """Trains ``task``'s model and writes everything into ``run``.

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
        self.model: nn.Module = task.build_model().to(device)
        self.optimizer = build_optimizer(cfg.train, self.model.parameters())
        self.scheduler = build_scheduler(cfg.train, self.optimizer)
        self.loader = task.train_loader(device)
        self.store = CheckpointStore(run.checkpoints, cfg.fingerprint(), cfg.checkpoint.keep_last)
        self.epoch = 0  # next epoch to run
        self.step = 0
        self.best_score = -math.inf
        self.best_epoch = -1
        self.best_state: dict | None = None
        self.bad_evals = 0
        self.elapsed = 0.0  # training seconds of earlier attempts, for a resumed run's total

    # --- resumable state -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else {},
            "best_model": self.best_state or {},
            "trainer": {"epoch": self.epoch, "step": self.step, "best_score": self.best_score,
                        "best_epoch": self.best_epoch, "bad_evals": self.bad_evals, "elapsed": self.elapsed},
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler and state["scheduler"]:
            self.scheduler.load_state_dict(state["scheduler"])
        self.best_state = state["best_model"] or None
        t = state["trainer"]
        self.epoch, self.step, self.bad_evals = int(t["epoch"]), int(t["step"]), int(t["bad_evals"])
        self.best_score, self.best_epoch = float(t["best_score"]), int(t["best_epoch"])
        self.elapsed = float(t["elapsed"])

    def resume_latest(self) -> bool:
        """Load the newest valid checkpoint of the run directory; False if there is none."""
        found = self.store.latest(warn=lambda msg: print(f"largegraph: warning: {msg}", file=sys.stderr))
        if found is None:
            return False
        self.load_state_dict(found[0])
        self.log(f"resumed from checkpoint at epoch {self.epoch} (step {self.step})")
        return True

    # --- the loop ----------------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> dict:
        self.model.train()
        total_loss, correct, seen, batches = 0.0, 0, 0, 0
        start = time.perf_counter()
        bar = tqdm(self.loader.epoch(epoch), total=self.loader.num_batches(), unit="batch",
                   desc=f"epoch {epoch + 1}/{self.cfg.train.epochs}", mininterval=1.0, leave=False)
        for batch in bar:
            loss, batch_correct = self.task.loss(self.model, batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.train.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
            self.optimizer.step()
            self.step += 1
            batches += 1
            total_loss += float(loss) * batch.size
            correct += batch_correct
            seen += batch.size
            bar.set_postfix(loss=f"{float(loss):.4f}", refresh=False)
        seconds = time.perf_counter() - start
        return {"loss": total_loss / max(seen, 1), f"batch_train_{self.task.metric}": correct / max(seen, 1),
                "time_s": seconds, "batches_per_s": batches / max(seconds, 1e-9),
                "nodes_per_s": seen / max(seconds, 1e-9)}

    def _evaluate(self, epoch: int) -> dict:
        result = self.task.evaluate(self.model, self.device)
        metric = self.task.metric
        score = result[f"valid_{metric}"]
        if score > self.best_score:
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
        stopped_early = False
        while self.epoch < tc.epochs and not stopped_early:
            epoch = self.epoch
            record = {"kind": "epoch", "epoch": epoch + 1, "step": None,
                      "lr": self.optimizer.param_groups[0]["lr"], **self._train_epoch(epoch)}
            evaluated = (epoch + 1) % tc.eval_every == 0 or epoch + 1 == tc.epochs
            if evaluated:
                record.update(self._evaluate(epoch))
                stopped_early = self._should_stop()
            self._step_scheduler(record)
            self.epoch = epoch + 1
            record["step"] = self.step
            self.elapsed = time.perf_counter() - started
            self.run.append_metrics(record)
            self.log(self._epoch_line(record))
            if self.epoch % self.cfg.checkpoint.every_n_epochs == 0 or self.epoch == tc.epochs or stopped_early:
                self.store.save(self.step, self.state_dict(), {"epoch": self.epoch})
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
            if f"{part}_{m}" in r:
                parts.append(f"{part}_{m} {r[f'{part}_{m}']:.4f}")
        parts.append(f"{r['time_s']:.1f}s ({r['batches_per_s']:.1f} batches/s, {r['nodes_per_s']:.0f} nodes/s)")
        return "  ".join(parts)

    def _finish(self, seconds: float) -> dict:
        if self.cfg.train.restore_best and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        result = self.task.evaluate(self.model, self.device)
        m = self.task.metric
        save_tensors(self.run.model_path, {k: v.cpu() for k, v in self.model.state_dict().items()})
        save_tensors(self.run.predictions_path, self.task.predictions(result))
        if self.cfg.train.export_embeddings:
            save_tensors(self.run.embeddings_path, result["emb"])
        summary = {
            f"test_{m}": result[f"test_{m}"], f"valid_{m}": result[f"valid_{m}"],
            f"train_{m}": result[f"train_{m}"], "best_epoch": self.best_epoch + 1,
            "epochs": self.epoch, "steps": self.step, "time_s": seconds, "run_dir": str(self.run.path),
        }
        self.run.append_metrics({"kind": "final", **summary})
        self.run.write_summary(summary)
        plot_curves(self.run, m)
        return summary
