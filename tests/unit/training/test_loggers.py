"""train.loggers: TensorBoard event files that TensorBoard's own reader parses, JSONL kept as the record,
and one line naming the extra when tensorboard is missing."""
from __future__ import annotations

import json
import sys

import pytest

from helpers import run_cli, write_config
from largegraph.config import build_config
from largegraph.core.errors import ConfigError
from largegraph.training.loggers import RunLoggers
from largegraph.training.rundir import RunDir


def test_a_tensorboard_run_writes_scalars_tensorboard_reads(tmp_path, synth_root):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = write_config(tmp_path / "tb.yaml", "tiny", synth_root, train={"epochs": 2, "loggers": ["jsonl", "tensorboard"]})
    result = run_cli("train", cfg, "--run-dir", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"step/loss", "step/lr", "step/examples_per_s", "epoch/loss", "epoch/lr", "epoch/nodes_per_s",
            "epoch/valid_acc"} <= tags
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    # every figure of the record, whichever the evaluation wrote (train/test too when it is exact)
    assert {f"epoch/{k}" for k, v in epochs[-1].items() if k not in ("kind", "epoch", "step")} <= tags
    assert [e.step for e in events.Scalars("epoch/valid_acc")] == [r["step"] for r in epochs]
    assert [e.value for e in events.Scalars("epoch/valid_acc")] == pytest.approx([r["valid_acc"] for r in epochs])
    steps = [e.step for e in events.Scalars("step/loss")]
    assert steps == list(range(1, epochs[-1]["step"] + 1))
    assert "config" in "".join(events.Tags()["tensors"])


def test_loggers_must_keep_the_jsonl_record():
    with pytest.raises(ConfigError, match="loggers must include jsonl"):
        build_config({"data": {"name": "x"}, "train": {"loggers": ["tensorboard"]}})
    with pytest.raises(ConfigError, match="train.loggers"):
        build_config({"data": {"name": "x"}, "train": {"loggers": ["jsonl", "wandb"]}})


def test_missing_tensorboard_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now raises ImportError
    cfg = build_config({"data": {"name": "x"}, "train": {"loggers": ["jsonl", "tensorboard"]}})
    with pytest.raises(ConfigError, match=r"pip install 'largegraph\[tensorboard\]'"):
        RunLoggers(cfg.train.loggers, RunDir(tmp_path), cfg)
    RunLoggers(["jsonl"], RunDir(tmp_path), cfg)  # without tensorboard nothing needs it
