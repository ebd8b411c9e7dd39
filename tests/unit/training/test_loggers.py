"""train.loggers: JSONL kept as the record, and one line naming the extra when tensorboard is missing
(a real run's TensorBoard events are tests/e2e/test_training.py's)."""
from __future__ import annotations

import sys

import pytest

from largegraph.config import build_config
from largegraph.core.errors import ConfigError
from largegraph.training.loggers import RunLoggers
from largegraph.training.rundir import RunDir


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
