"""A run directory: the single place a training run writes to, and the only input to `report` and resume.

Layout::

    config.resolved.yaml   the validated config, defaults filled in
    metrics.jsonl          one JSON record per epoch (and one "final" record)
    checkpoints/           see largegraph.checkpoint
    model.pt               final weights (plain state_dict)
    predictions.pt         per-node predictions and the split
    embeddings.pt          node embeddings (train.export_embeddings: true)
    summary.json           the final metrics
    curves.png             loss and metric curves
    heartbeat              {"pid", "time", "step"}, rewritten every few seconds while training runs
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from largegraph.config import JobConfig, dump_config
from largegraph.errors import ConfigError


def default_run_dir(cfg: JobConfig, base: str = "runs", launch_id: str | None = None) -> Path:
    """``runs/<name>-<UTC time>``, or ``runs/<name>-<launch_id>`` under torchrun, whose rendezvous id
    stays the same when it restarts workers (and across Slurm requeues with ``--rdzv-id $SLURM_JOB_ID``),
    so a restarted run finds its own checkpoints."""
    if launch_id:
        return Path(base) / f"{cfg.name}-{launch_id}"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path(base) / f"{cfg.name}-{stamp}"


class RunDir:
    """Paths and writers of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.resolved.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def model_path(self) -> Path:
        return self.path / "model.pt"

    @property
    def predictions_path(self) -> Path:
        return self.path / "predictions.pt"

    @property
    def embeddings_path(self) -> Path:
        return self.path / "embeddings.pt"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def curves_path(self) -> Path:
        return self.path / "curves.png"

    @property
    def run_id_path(self) -> Path:
        return self.path / "run_id"

    def run_id(self) -> str:
        """This directory's identity, stamped into every checkpoint it holds."""
        if not self.run_id_path.exists():
            self.run_id_path.write_text(uuid.uuid4().hex + "\n")
        return self.run_id_path.read_text().strip()

    def truncate_metrics(self, step: int) -> None:
        """Drop records written after ``step`` (work a crash undid), so a resumed run's log has each
        epoch once. Rewritten atomically: a crash here leaves the old file."""
        keep = [r for r in self.read_metrics() if r.get("step") is None or r["step"] <= step]
        tmp = self.metrics_path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
        os.replace(tmp, self.metrics_path)

    def create(self, cfg: JobConfig) -> None:
        """Create the directory and write the resolved config."""
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--run-dir {self.path} exists and is not a directory")
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create run directory {self.path}: {exc.strerror}") from None
        dump_config(cfg, self.config_path)

    def append_metrics(self, record: dict) -> None:
        with open(self.metrics_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        records = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a crash: the rest of the file is still good
        return records

    def write_summary(self, summary: dict) -> None:
        self.summary_path.write_text(json.dumps(summary, indent=2) + "\n")


class Heartbeat:
    """Rewrites ``<run_dir>/heartbeat`` every ``interval`` seconds from a daemon thread.

    A supervisor (the orchestrator) treats a heartbeat older than its timeout as a dead or frozen
    trainer. The file is replaced atomically, so a reader never sees half a record.
    """

    def __init__(self, path: Path, interval: float, step: Callable[[], int]):
        self.path = Path(path)
        self.interval = interval
        self.step = step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="largegraph-heartbeat", daemon=True)

    def beat(self) -> None:
        record = {"pid": os.getpid(), "time": time.time(), "step": self.step()}
        tmp = self.path.with_name(f".heartbeat.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(record) + "\n")
            os.replace(tmp, self.path)
        except OSError:
            pass  # a full disk must not kill training; the supervisor will see a stale heartbeat

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def __enter__(self) -> "Heartbeat":
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)  # not left mid-write when the process exits
