"""The Trainer in-process, on a small fake task: resume, early stopping, weight average, save policy.

The fake task is a linear regression over fixed random data, so a step takes microseconds and the
loop's own logic is what is tested; its loader cuts batches with the real epoch order and sharding.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from largegraph.training.averaging import WeightAverage
from largegraph.training.checkpoint import CheckpointManager, CheckpointStore
from largegraph.config import (
    CheckpointConfig,
    DataConfig,
    JobConfig,
    SamplerConfig,
    TrainConfig,
)
from largegraph.core.errors import Stopped
from largegraph.training.selection import EvalTracker
from largegraph.training.export import RunExport
from largegraph.training.optim import Schedule, build_optimizer
from largegraph.training.components import Components
from largegraph.core.rng import seed_everything
from largegraph.training.rundir import RunDir
from largegraph.sampling.order import BatchList, count_batches, epoch_order
from largegraph.core.signals import StopRequest
from largegraph.training.trainer import Trainer

N, DIM = 64, 4


@dataclass
class FakeBatch:
    x: torch.Tensor
    y: torch.Tensor
    seed_ids: torch.Tensor
    offset: int
    input_nodes = None  # no blocks: nothing sampled
    blocks = ()

    @property
    def size(self) -> int:
        return len(self.seed_ids)


class FakeLoader:
    """Batches of the real epoch order; ``stop_at`` (epoch, batch) sets the stop request there."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 8, stop: StopRequest | None = None,
                 stop_at: tuple[int, int] | None = None):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.seeds = torch.arange(len(x))
        self.cfg = SamplerConfig(fanouts=[1], batch_size=batch_size)
        self.stop, self.stop_at = stop, stop_at

    def num_batches(self, start: int = 0) -> int:
        return count_batches(len(self.seeds) - start, self.batch_size)

    def epoch(self, epoch: int, start: int = 0):
        order = epoch_order(self.seeds, 7, epoch, shuffle=True)[start:]
        plan = BatchList(order, self.batch_size, drop_last=False)
        for i in range(len(plan)):
            if self.stop_at == (epoch, i):
                self.stop.requested = True
            ids = plan[i]
            yield FakeBatch(self.x[ids], self.y[ids], ids, start + plan.end(i))


class FakeTask:
    """Regression with dropout (so the RNG matters); ``scores`` scripts the validation scores."""

    metric = "acc"
    collective = False

    def __init__(self, x: torch.Tensor, y: torch.Tensor, scores: list[float] | None = None):
        self.x, self.y, self.scores, self.evaluations = x, y, scores, 0
        self.asked: list[bool] = []  # each evaluation's ``outputs``
        self.scores_only_unless_asked = False  # as a task whose outputs live elsewhere (distdgl)

    def loss(self, model: nn.Module, batch: FakeBatch) -> tuple[torch.Tensor, int]:
        return nn.functional.mse_loss(model(batch.x).squeeze(-1), batch.y), 0

    @torch.no_grad()
    def evaluate(self, model: nn.Module, device, outputs: bool = True) -> dict:
        self.evaluations += 1
        self.asked.append(outputs)
        model.eval()
        error = float(nn.functional.mse_loss(model(self.x).squeeze(-1), self.y))
        model.train()
        valid = self.scores[self.evaluations - 1] if self.scores else -error
        scores = {"train_acc": -error, "valid_acc": valid, "test_acc": -error}
        if self.scores_only_unless_asked and not outputs:
            return {**scores, "scores_only": True}
        return {**scores, "pred": model(self.x).squeeze(-1)}

    def selection_scores(self, model: nn.Module, device) -> None:
        return None

    def predictions(self, result: dict) -> dict:
        return {"pred": result["pred"]}

    def embeddings_of(self, result: dict) -> torch.Tensor:
        return result["pred"]


def make_trainer(tmp_path, train: dict, checkpoint: dict | None = None, scores=None, stop_at=None,
                 run_name: str = "run") -> Trainer:
    cfg = JobConfig(name="fake", data=DataConfig(name="fake"), train=TrainConfig(**train),
                    checkpoint=CheckpointConfig(**(checkpoint or {})), sampler=SamplerConfig(fanouts=[1]),
                    model={"num_layers": 1})
    run = RunDir(tmp_path / run_name)
    run.create(cfg)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, DIM, generator=gen)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(N, generator=gen)
    seed_everything(0)
    model = nn.Sequential(nn.Linear(DIM, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
    stop = StopRequest()
    task = FakeTask(x, y, scores)
    optimizer = build_optimizer(cfg.train, model.parameters())
    ck = cfg.checkpoint
    store = CheckpointStore(run.checkpoints, cfg.fingerprint(), run.run_id(), ck.keep_last, ck.keep_best)
    components = Components(model=model, train_model=model, loader=FakeLoader(x, y, stop=stop, stop_at=stop_at),
                            task=task, optimizer=optimizer, schedule=Schedule(cfg.train, optimizer),
                            average=WeightAverage(model, cfg.train.ema_decay),
                            tracker=EvalTracker("acc", cfg.train.early_stopping_patience),
                            checkpoints=CheckpointManager(store, ck), export=RunExport(run, task),
                            run=run, device=torch.device("cpu"))
    return Trainer(cfg.train, components, stop=stop)


def weights(trainer: Trainer) -> dict:
    return {k: v.clone() for k, v in trainer.components.model.state_dict().items()}


def test_stopped_mid_epoch_and_resumed_ends_bitwise_equal_to_an_uninterrupted_run(tmp_path):
    train = {"epochs": 3, "lr": 0.01, "restore_best": False}
    whole = make_trainer(tmp_path, train, run_name="whole")
    whole.fit()
    stopped = make_trainer(tmp_path, train, stop_at=(1, 3), run_name="cut")
    with pytest.raises(Stopped, match="step-0000000012"):
        stopped.fit()
    resumed = make_trainer(tmp_path, train, run_name="cut")
    assert resumed.resume()
    assert (resumed.epoch, resumed.batch, resumed.offset, resumed.step) == (1, 4, 32, 12)
    summary = resumed.fit()
    assert summary["steps"] == whole.step == 24
    for key, value in weights(whole).items():
        assert torch.equal(value, weights(resumed)[key]), key
    epochs = [r["epoch"] for r in resumed.components.run.read_metrics() if r["kind"] == "epoch"]
    assert epochs == [1, 2, 3]  # each epoch logged once across the two attempts


def test_a_fresh_start_drops_metrics_of_an_attempt_that_left_no_checkpoint(tmp_path):
    # A kill between an epoch's metrics line and its checkpoint leaves a line no checkpoint backs.
    train = {"epochs": 2, "lr": 0.01}
    crashed = make_trainer(tmp_path, train)
    crashed.components.run.append_metrics({"kind": "epoch", "epoch": 1, "step": 8, "train_loss": 9.0})
    again = make_trainer(tmp_path, train)
    assert not again.resume()
    again.start_fresh()
    again.fit()
    records = again.components.run.read_metrics()
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2]
    assert all(r.get("train_loss") != 9.0 for r in records)


def test_early_stopping_keeps_the_best_evaluation_and_exports_its_weights(tmp_path):
    scores = [0.5, 0.7, 0.6, 0.65, 0.4, 0.9]
    trainer = make_trainer(tmp_path, {"epochs": 6, "early_stopping_patience": 2}, scores=scores)
    summary = trainer.fit()
    assert trainer.epoch == 4 and summary["best_epoch"] == 2 and summary["epochs"] == 4
    exported = torch.load(trainer.components.run.model_path, weights_only=True)
    best = trainer.components.tracker.best_weights
    assert all(torch.equal(exported[k], best[k]) for k in best)
    # the restored best weights are scored again: the final evaluation is not the last epoch's
    assert trainer.components.task.evaluations == 5


def test_finished_run_reuses_its_last_evaluation_when_it_exports_those_weights(tmp_path):
    trainer = make_trainer(tmp_path, {"epochs": 2, "restore_best": False})
    trainer.fit()
    assert trainer.components.task.evaluations == 2


def test_only_an_evaluation_the_run_may_end_with_asks_for_every_output(tmp_path):
    trainer = make_trainer(tmp_path, {"epochs": 3, "restore_best": False})
    trainer.components.task.scores_only_unless_asked = True
    trainer.fit()
    assert trainer.components.task.asked == [False, False, True]  # the last epoch's is reused by the export
    assert torch.load(trainer.components.run.predictions_path)["pred"].shape == (N,)

    scores = [0.5, 0.7, 0.6, 0.65]
    stopped = make_trainer(tmp_path, {"epochs": 6, "early_stopping_patience": 2, "restore_best": False},
                           scores=scores + [0.0], run_name="early")
    stopped.components.task.scores_only_unless_asked = True
    summary = stopped.fit()
    # stopped early after scores only: the export evaluates its weights once more, asking for outputs
    assert summary["epochs"] == 4 and stopped.components.task.asked == [False] * 4 + [True]
    assert torch.load(stopped.components.run.predictions_path)["pred"].shape == (N,)


def test_weight_average_is_what_evaluation_and_model_pt_see(tmp_path):
    trainer = make_trainer(tmp_path, {"epochs": 2, "ema_decay": 0.5, "restore_best": False})
    trainer.fit()
    average = trainer.components.average.average
    exported = torch.load(trainer.components.run.model_path, weights_only=True)
    assert all(torch.equal(exported[k], average[k]) for k in average)
    raw = make_trainer(tmp_path, {"epochs": 2, "restore_best": False}, run_name="raw")
    raw.fit()
    # same trajectory (the average never feeds back into training), different exported weights
    assert not torch.equal(exported["0.weight"], torch.load(raw.components.run.model_path, weights_only=True)["0.weight"])


def test_save_policy_writes_checkpoints_where_the_config_says(tmp_path):
    trainer = make_trainer(tmp_path, {"epochs": 5},
                           checkpoint={"every_n_epochs": 2, "every_n_steps": 3, "keep_last": 100, "keep_best": False})
    trainer.fit()
    steps = sorted(int(p.stem.split("-")[1]) for p in trainer.components.checkpoints.store.manifests())
    in_epochs = {s for s in range(3, 41, 3) if s % 8}  # every 3 steps, but not on an epoch's last batch
    assert steps == sorted(in_epochs | {16, 32, 40})  # epochs 2, 4 and the final one (8 steps each)


def test_keep_last_prunes_to_the_newest_checkpoints(tmp_path):
    trainer = make_trainer(tmp_path, {"epochs": 4}, checkpoint={"keep_last": 2, "keep_best": False})
    trainer.fit()
    steps = [int(p.stem.split("-")[1]) for p in trainer.components.checkpoints.store.manifests()]
    assert steps == [24, 32]
