"""The epoch/step loop shared by every task.

The trainer knows nothing about graphs: a task gives it a model, a loader whose ``epoch(e)`` yields
mini-batches, a loss and an evaluation. Whether batches come from a local graph, worker processes or
(later) a DistGraph is the loader's business.
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from largegraph import distributed
from largegraph.checkpoint import CheckpointStore, save_tensors
from largegraph.config import JobConfig, TrainConfig
from largegraph.distributed import DistEnv
from largegraph.errors import CheckpointError, JobError, Stopped
from largegraph.sampling import mix_seed
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


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def _fresh_partial() -> dict:
    return {"loss_sum": 0.0, "correct": 0, "seen": 0, "batches": 0, "seconds": 0.0}


class Trainer:
    """Trains ``task``'s model and writes everything into ``run``.

    The loop's position is (epoch, batch within the epoch, global step); together with the model,
    optimizer, scheduler, early-stopping state, the epoch's running totals and the RNG states it is
    all in :meth:`state_dict`, so a run resumed from any checkpoint, including one taken mid-epoch,
    continues exactly as the uninterrupted run would have.

    Data parallel (``dist.world_size > 1``): every rank holds the same model, optimizer and loop
    position; each trains on its slice of every global batch (see ``sampling.BatchList``) and DDP
    averages the gradients. Rank 0 alone evaluates, writes metrics and checkpoints, and hands its
    results to the other ranks, so all of them agree on the best epoch and on early stopping.
    A checkpoint records how many seeds of the current epoch are consumed, not a batch index, so
    it resumes with any number of ranks: the rest of the epoch is re-sharded over the new ones.

    Args:
        cfg: the job config.
        task: a task object (see ``largegraph.tasks``).
        run: the run directory (already created).
        device: where the model and batches live.
        log: where progress lines go (stdout by default).
        dist: this process's place among the job's ranks.
    """

    def __init__(self, cfg: JobConfig, task, run: RunDir, device: torch.device,
                 log: Callable[[str], None] | None = None, dist: DistEnv | None = None):
        self.cfg = cfg
        self.task = task
        self.run = run
        self.device = device
        self.dist = dist or DistEnv()
        self.log = log or (lambda line: tqdm.write(line, file=sys.stdout))
        seed_everything(cfg.seed)
        self.model: nn.Module = task.build_model().to(device)
        # Before DDP's first collective: a rank that cannot build its loader stops all of them.
        self.loader = distributed.together(
            lambda: task.train_loader(device, self.dist.rank, self.dist.world_size), self.dist)
        # Same initial weights on every rank, but each rank its own dropout stream.
        if self.dist.rank:
            seed_everything(mix_seed(cfg.seed, self.dist.rank))
        self.train_model = distributed.wrap_model(self.model, self.dist, device)
        self.optimizer = build_optimizer(cfg.train, self.model.parameters())
        self.scheduler = build_scheduler(cfg.train, self.optimizer)
        self.ema: dict[str, torch.Tensor] | None = None
        if cfg.train.ema_decay is not None:
            self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        ck = cfg.checkpoint
        self.store = CheckpointStore(run.checkpoints, cfg.fingerprint(), run.run_id(), ck.keep_last, ck.keep_best)
        self.epoch = 0  # current epoch
        self.batch = 0  # batches done in the current epoch (by this process's ranks, for progress)
        self.offset = 0  # seeds of the current epoch's order consumed by all ranks together
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
        self.stop_requested = False  # set by a signal handler; honoured at the next batch boundary
        # Debug aid (LARGEGRAPH_VERIFY_DDP=1): prove the ranks stay in lock step and split the data.
        self.verify = self.dist.enabled and os.environ.get("LARGEGRAPH_VERIFY_DDP") == "1"
        self.verified_steps = 0

    # --- resumable state -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else {},
            "best_model": self.best_state or {},
            "ema": self.ema or {},
            "rng": capture_rng(),
            "trainer": {"epoch": self.epoch, "batch": self.batch, "offset": self.offset, "step": self.step,
                        "partial": dict(self.partial), "world_size": self.dist.world_size,
                        "best_score": self.best_score, "best_epoch": self.best_epoch,
                        "bad_evals": self.bad_evals, "elapsed": self.elapsed},
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler and state["scheduler"]:
            self.scheduler.load_state_dict(state["scheduler"])
        self.best_state = state["best_model"] or None
        if self.ema is not None:
            # a run that turns averaging on when resumed starts the average at the current weights
            saved = state.get("ema") or self.model.state_dict()
            self.ema = {k: saved[k].detach().clone().to(v.device) for k, v in self.model.state_dict().items()}
        t = state["trainer"]
        self.epoch, self.batch, self.step = int(t["epoch"]), int(t["batch"]), int(t["step"])
        self.offset = int(t.get("offset", self.batch * self.cfg.sampler.batch_size))
        self.partial = dict(t["partial"])
        if self.dist.rank:
            # The saved totals are already summed over the ranks that wrote them; rank 0 carries them.
            self.partial.update(loss_sum=0.0, correct=0, seen=0)
        self.bad_evals, self.best_epoch = int(t["bad_evals"]), int(t["best_epoch"])
        self.best_score, self.elapsed = float(t["best_score"]), float(t["elapsed"])
        self._restore_rng(state, int(t.get("world_size", 1)))

    def _restore_rng(self, state: dict, saved_world: int) -> None:
        ranks = state.get("rng_ranks") or [state["rng"]]
        if len(ranks) == self.dist.world_size:
            restore_rng(ranks[self.dist.rank])
        elif self.dist.rank == 0:
            restore_rng(state["rng"])
        else:
            # A rank the saved run did not have: a fresh stream, still a function of the run's position.
            seed_everything(mix_seed(self.cfg.seed, self.dist.rank, self.step))

    def resume(self, checkpoint: str | None = None) -> bool:
        """Continue from ``checkpoint`` (a path) or, if None, the newest one that verifies.

        Rank 0 picks the checkpoint and every rank loads that one.

        Returns:
            False when there is no checkpoint to resume from.
        Raises:
            CheckpointError: a named checkpoint is corrupt, foreign, or for another config.
        """
        picked: dict = {}

        def pick() -> str | None:
            if checkpoint is not None:
                return str(self.store.resolve(checkpoint))
            found = self.store.latest(warn=lambda msg: print(f"largegraph: warning: {msg}", file=sys.stderr))
            if found is None:
                return None
            picked["found"] = found
            return str(self.store.directory / f"step-{int(found[1]['step']):010d}.json")

        path = distributed.on_main(pick, self.dist)
        if path is None:
            return False
        state, manifest = picked.get("found") or self.store.load(Path(path))
        self.load_state_dict(state)
        saved_world = int(state["trainer"].get("world_size", 1))
        name = f"step-{int(manifest['step']):010d}"
        if self.dist.is_main:
            self.run.truncate_metrics(self.step)
            self.run.append_metrics({"kind": "resume", "step": self.step, "epoch": self.epoch + 1, "batch": self.batch,
                                     "offset": self.offset, "checkpoint": name, "world_size": self.dist.world_size,
                                     "saved_world_size": saved_world})
        self.log(f"resumed from checkpoint {name}: epoch {self.epoch + 1}, batch {self.batch}, step {self.step}")
        if saved_world != self.dist.world_size and self.offset:
            self.log(f"the checkpoint was written by {saved_world} worker(s), this run has {self.dist.world_size}: "
                     f"epoch {self.epoch + 1} goes on from seed {self.offset} of {len(self.loader.seeds)} of its "
                     f"order, the rest re-sharded over the new workers (no seed skipped or repeated)")
        return True

    def _save(self, final: bool = False) -> None:
        """Checkpoint (a collective: every rank calls it at the same step; rank 0 writes)."""
        self._sum_partial_on_main()
        rngs = distributed.gather(capture_rng(), self.dist) if self.dist.enabled else None
        # The score marks the checkpoint taken right after a new best evaluation (for keep_best).
        meta = {"epoch": self.epoch, "batch": self.batch, "score": self.best_score if self._just_improved else None}

        def write() -> None:
            state = self.state_dict()
            if rngs:
                state["rng_ranks"] = rngs
            try:
                self.store.save(self.step, state, meta)
            except CheckpointError as exc:
                if self.cfg.checkpoint.on_save_error == "fail" or final:
                    raise
                print(f"largegraph: warning: {exc}; training goes on (checkpoint.on_save_error=continue)",
                      file=sys.stderr)

        distributed.on_main(write, self.dist)

    def _sum_partial_on_main(self) -> None:
        """Move the epoch's running totals of all ranks into rank 0's (what a checkpoint stores)."""
        if not self.dist.enabled:
            return
        p = self.partial
        total = distributed.all_sum([p["loss_sum"], p["correct"], p["seen"]], self.dist)
        if self.dist.is_main:
            p["loss_sum"], p["correct"], p["seen"] = total[0], int(total[1]), int(total[2])
        else:
            p["loss_sum"], p["correct"], p["seen"] = 0.0, 0, 0

    # --- the loop ----------------------------------------------------------------------------------
    def _autocast(self) -> torch.autocast:
        # bf16 halves the cost of the large dense products (an MLP edge scorer over 100k+ pairs)
        # on CPUs and GPUs with bf16 units; weights, optimizer state and evaluation stay fp32.
        bf16 = self.cfg.train.precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16)

    def _train_epoch(self) -> dict:
        self.train_model.train()
        p = self.partial
        every = self.cfg.checkpoint.every_n_steps
        total = self.batch + self.loader.num_batches(self.offset)
        bar = tqdm(self.loader.epoch(self.epoch, self.offset), total=total, initial=self.batch, unit="batch",
                   desc=f"epoch {self.epoch + 1}/{self.cfg.train.epochs}", mininterval=1.0, leave=False,
                   disable=not self.dist.is_main)
        seen_ids = [] if self.verify and self.offset == 0 else None
        start = time.perf_counter()
        for batch in bar:
            with self._autocast():
                loss, batch_correct = self.task.loss(self.train_model, batch)
            loss = loss.float()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.train.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
            self.optimizer.step()
            self._update_ema()
            self.step += 1
            self.batch += 1
            self.offset = batch.offset
            p["batches"] += 1
            p["loss_sum"] += float(loss) * batch.size
            p["correct"] += batch_correct
            p["seen"] += batch.size
            bar.set_postfix(loss=f"{float(loss):.4f}", refresh=False)
            if self.verify:
                self._verify_step(batch, seen_ids)
            stop = distributed.any_rank(self.stop_requested, self.dist)
            if stop or (every and self.step % every == 0 and self.batch < total):
                now = time.perf_counter()
                p["seconds"] += now - start
                start = now
                self._save()
                if stop:
                    raise Stopped(f"stopped on SIGTERM after writing checkpoint step-{self.step:010d} (epoch "
                                  f"{self.epoch + 1}, batch {self.batch}); rerun with --resume auto to continue")
        p["seconds"] += time.perf_counter() - start
        if seen_ids is not None:
            self._verify_epoch(seen_ids)
        self._sum_partial_on_main()
        seconds = p["seconds"]
        # Rank 0 holds the sums over all ranks now; every rank reports the same epoch.
        loss_sum, correct, seen = distributed.broadcast((p["loss_sum"], p["correct"], p["seen"]), self.dist)
        return {"loss": loss_sum / max(seen, 1), "batch_train_acc": correct / max(seen, 1), "seeds": seen,
                "time_s": seconds, "batches_per_s": p["batches"] / max(seconds, 1e-9),
                "nodes_per_s": seen / max(seconds, 1e-9)}

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is None:
            return
        weight = 1.0 - self.cfg.train.ema_decay
        for name, value in self.model.state_dict().items():
            average = self.ema[name]
            if average.is_floating_point():
                average.lerp_(value.to(average.dtype), weight)
            else:
                average.copy_(value)  # counters (batch-norm's num_batches_tracked) are not averaged

    @contextlib.contextmanager
    def _evaluated_weights(self) -> Iterator[None]:
        """The weights evaluations score: the moving average when ``train.ema_decay`` is set."""
        if self.ema is None:
            yield
            return
        trained = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.ema)
        try:
            yield
        finally:
            self.model.load_state_dict(trained)

    def _verify_step(self, batch, seen_ids: list | None) -> None:
        if not distributed.parameters_match(self.model, self.dist):
            raise JobError(f"DDP check failed: parameters differ across ranks after step {self.step}")
        self.verified_steps += 1
        if seen_ids is not None:
            seen_ids.append(batch.seed_ids.cpu())

    def _verify_epoch(self, seen_ids: list) -> None:
        """Every rank's seeds of a whole epoch: disjoint, and together the epoch's consumed order."""
        mine = torch.cat(seen_ids) if seen_ids else torch.empty(0, dtype=torch.long)
        everyone = torch.cat(distributed.gather(mine, self.dist))
        unique = set(everyone.tolist())
        if len(unique) != len(everyone) or len(unique) != self.offset or not unique <= set(self.loader.seeds.tolist()):
            raise JobError(f"DDP check failed: epoch {self.epoch + 1}: ranks trained on {len(everyone)} seeds, "
                           f"{len(unique)} distinct, expected {self.offset} distinct training seeds")
        self.log(f"ddp check: epoch {self.epoch + 1}: {self.dist.world_size} ranks trained on {len(everyone)} seeds, "
                 f"disjoint, covering all {self.offset}")

    def _evaluate(self, epoch: int) -> dict:
        """Full-graph evaluation on rank 0; its scores reach every rank, so all agree on the best
        epoch and on early stopping."""
        metric = self.task.metric

        def evaluate() -> dict:
            with self._evaluated_weights():
                result = self.task.evaluate(self.model, self.device)
            self._last_eval, self._last_eval_epoch = (self.step, result), epoch
            return {k: result[k] for k in (f"train_{metric}", f"valid_{metric}", f"test_{metric}")}

        scores = distributed.on_main(evaluate, self.dist)
        score = scores[f"valid_{metric}"]
        self._just_improved = score > self.best_score
        if self._just_improved:
            self.best_score, self.best_epoch, self.bad_evals = score, epoch, 0
            if self.dist.is_main:  # only the rank that writes the final model needs the best weights
                self.best_state = copy.deepcopy({k: v.cpu() for k, v in self._final_weights().items()})
        else:
            self.bad_evals += 1
        return scores

    def _final_weights(self) -> dict:
        return self.ema if self.ema is not None else self.model.state_dict()

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
            self.epoch, self.batch, self.offset, self.partial = epoch + 1, 0, 0, _fresh_partial()
            record["step"] = self.step
            self.elapsed = time.perf_counter() - started
            if self.dist.is_main:
                self.run.append_metrics(record)
            self.log(self._epoch_line(record))
            if self.epoch % self.cfg.checkpoint.every_n_epochs == 0 or self.epoch == tc.epochs or stopped_early:
                self._save(final=self.epoch == tc.epochs or stopped_early)
        if stopped_early:
            self.log(f"early stopping: no better valid_{self.task.metric} for {self.bad_evals} evaluations")
        if self.verify:
            self.log(f"ddp check: parameters identical on all {self.dist.world_size} ranks after each of "
                     f"{self.verified_steps} steps")
        # The other ranks are done: rank 0 alone scores and writes the final artefacts.
        return self._finish(time.perf_counter() - started) if self.dist.is_main else {}

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
        elif self.ema is not None:
            self.model.load_state_dict(self.ema)
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
