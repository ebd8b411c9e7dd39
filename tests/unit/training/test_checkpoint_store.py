"""CheckpointStore: a failing write keeps the previous checkpoint, a hostile pickle is refused."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from largegraph.training import checkpoint as ckpt
from largegraph.training.checkpoint import CheckpointStore
from largegraph.core.errors import CheckpointError


def test_failing_write_keeps_previous_checkpoint_valid(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path / "checkpoints", "fp", "run", keep_last=2)
    store.save(1, {"w": torch.ones(3)})
    real_write = ckpt.atomic_write_bytes

    def disk_full(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "atomic_write_bytes", disk_full)
    with pytest.raises(CheckpointError, match="No space left on device.*step-0000000001.*intact"):
        store.save(2, {"w": torch.zeros(3)})
    monkeypatch.setattr(ckpt, "atomic_write_bytes", real_write)
    state, manifest = store.latest()
    assert manifest["step"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert sorted(p.name for p in store.directory.iterdir()) == ["step-0000000001.json", "step-0000000001.pt"]


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_runs_code_on_unpickling_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    store = CheckpointStore(tmp_path / "checkpoints", "fp", "run")
    store.directory.mkdir()
    payload = pickle.dumps({"model": _Exploit(marker)})
    (store.directory / "step-0000000001.pt").write_bytes(payload)
    manifest = {"step": 1, "sha256": hashlib.sha256(payload).hexdigest(), "fingerprint": "fp", "run_id": "run"}
    (store.directory / "step-0000000001.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="refused to load"):
        store.load(store.directory / "step-0000000001.json")
    assert not marker.exists()

