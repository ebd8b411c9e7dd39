"""A run directory: the single place a training run writes to, and the only input to `report` and resume.

Layout::

    config.resolved.yaml   the validated config, defaults filled in
    metrics.jsonl          one JSON record per epoch (and one "final" record)
    checkpoints/           see largegraph.training.checkpoint
    model.pt               final weights (plain state_dict)
    predictions.pt         per-node predictions and the split
    embeddings.pt          node embeddings (train.export_embeddings: true)
    summary.json           the final metrics
    curves.png             loss and metric curves
    heartbeat              {"pid", "time", "step"}, rewritten every few seconds while training runs
    train.log              the trainer's output, when the job service runs it
    run_id                 this directory's identity, stamped into its checkpoints
    tensorboard/           TensorBoard event files (train.loggers: [jsonl, tensorboard])

:class:`RunDir` is the only code that spells these names; everything else asks it for a path.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from largegraph.config import JobConfig, dump_config, read_yaml
from largegraph.core.errors import CheckpointError, ConfigError
from largegraph.core.fsutil import TMP_MARK, atomic_write_text


def default_run_dir(cfg: JobConfig, base: str = "runs", launch_id: str | None = None) -> Path:
    """``runs/<name>-<UTC time>``, or ``runs/<name>-<launch_id>`` under torchrun, whose rendezvous id
    stays the same when it restarts workers (and across Slurm requeues with ``--rdzv-id $SLURM_JOB_ID``),
    so a restarted run finds its own checkpoints."""
    if launch_id:
        return Path(base) / f"{cfg.name}-{launch_id}"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path(base) / f"{cfg.name}-{stamp}"


# What decides a run's course besides JobConfig.fingerprint (the model and task, which a checkpoint
# checks itself): a run directory whose recorded value differs holds another job's run (a job id that
# a second cluster reused, another config), and resuming it would silently mix two jobs. What does not
# change the run's course may differ between attempts of one job: paths, logging, checkpoint cadence,
# sampling workers (a resume is bitwise equal with any number), distributed connection details.
# train.epochs may grow: extending a finished or running job is a deliberate, common change.
RUN_DEFINING_KEYS = (
    ("seed",), ("data", "add_reverse_edges"), ("data", "self_loops"), ("data", "feature_norm"),
    ("sampler", "fanouts"), ("sampler", "batch_size"), ("sampler", "shuffle"), ("sampler", "drop_last"),
    ("sampler", "full_graph"),
    ("train", "epochs"), ("train", "lr"), ("train", "weight_decay"), ("train", "optimizer"),
    ("train", "lr_schedule"), ("train", "lr_step_epochs"), ("train", "lr_gamma"), ("train", "grad_clip"),
    ("train", "precision"), ("train", "label_smoothing"), ("train", "ema_decay"),
    ("link", "loss"), ("link", "margin"), ("link", "negative_sampler"), ("link", "num_negatives"),
    ("link", "exclude_seed_edges"), ("link", "true_negatives"),
)
_ABSENT = object()


def _lookup(tree: dict, key: tuple[str, ...]):
    for part in key:
        tree = tree.get(part, _ABSENT) if isinstance(tree, dict) else _ABSENT
    return tree


def run_conflicts(recorded: dict, cfg: JobConfig) -> list[str]:
    """``key: recorded -> given`` for each run-defining key (:data:`RUN_DEFINING_KEYS`) on which the
    config a run directory recorded differs from ``cfg``. Keys the record lacks (written by an older
    version) are not compared; ``train.epochs`` may grow."""
    given = cfg.model_dump(mode="json")
    conflicts = []
    for key in RUN_DEFINING_KEYS:
        old, new = _lookup(recorded, key), _lookup(given, key)
        if old is _ABSENT or old == new or (key == ("train", "epochs") and isinstance(old, int) and new > old):
            continue
        conflicts.append(f"{'.'.join(key)}: {old} -> {new}")
    return conflicts


class RunDir:
    """Paths and writers of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def existing(cls, path: str | Path, needs: str, error: type[Exception] = ConfigError) -> "RunDir":
        """A run directory that exists and holds the file ``needs`` (one of the names below).

        Raises:
            ``error``: naming what is missing.
        """
        run = cls(path)
        if not run.path.is_dir():
            raise error(f"run directory {run.path} does not exist")
        if not (run.path / needs).is_file():
            raise error(f"{run.path} has no {needs}; is it a largegraph run directory?")
        return run

    # Every file of a run directory, by role.
    CONFIG = "config.resolved.yaml"
    METRICS = "metrics.jsonl"
    CHECKPOINTS = "checkpoints"
    MODEL = "model.pt"
    PREDICTIONS = "predictions.pt"
    EMBEDDINGS = "embeddings.pt"
    SUMMARY = "summary.json"
    CURVES = "curves.png"
    HEARTBEAT = "heartbeat"
    LOG = "train.log"
    RUN_ID = "run_id"
    TENSORBOARD = "tensorboard"
    # What a run hands its users (the API's artifacts, `largegraph fetch`); nothing else is served.
    SHARED_FILES = (MODEL, PREDICTIONS, EMBEDDINGS, SUMMARY, CURVES, CONFIG, METRICS, LOG)

    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def model_path(self) -> Path:
        return self.path / self.MODEL

    @property
    def predictions_path(self) -> Path:
        return self.path / self.PREDICTIONS

    @property
    def embeddings_path(self) -> Path:
        return self.path / self.EMBEDDINGS

    @property
    def summary_path(self) -> Path:
        return self.path / self.SUMMARY

    @property
    def curves_path(self) -> Path:
        return self.path / self.CURVES

    @property
    def heartbeat_path(self) -> Path:
        return self.path / self.HEARTBEAT

    @property
    def log_path(self) -> Path:
        return self.path / self.LOG

    @property
    def tensorboard_path(self) -> Path:
        return self.path / self.TENSORBOARD

    @property
    def run_id_path(self) -> Path:
        return self.path / self.RUN_ID

    def run_id(self) -> str:
        """This directory's identity, stamped into every checkpoint it holds (made by :meth:`create`).

        Raises:
            CheckpointError: the directory was never created by a run.
        """
        try:
            return self.run_id_path.read_text().strip()
        except FileNotFoundError:
            raise CheckpointError(f"{self.path} has no run_id; is it a largegraph run directory?") from None

    def _claim_run_id(self) -> None:
        """Give the directory an id once: the first writer wins and everyone reads its id, however
        many ranks or processes create the directory at the same moment (``os.link`` fails on an
        existing name, so there is no window between the check and the write)."""
        if self.run_id_path.exists():
            return
        tmp = self.run_id_path.with_name(f".{self.RUN_ID}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
        tmp.write_text(uuid.uuid4().hex + "\n")
        try:
            with contextlib.suppress(FileExistsError):  # another process's id won: read theirs
                os.link(tmp, self.run_id_path)
        finally:
            tmp.unlink(missing_ok=True)

    def refuse_other_job(self, cfg: JobConfig) -> None:
        """Raise unless the config this directory recorded could be this job's (:func:`run_conflicts`).

        Raises:
            ConfigError: one line naming the keys that differ.
        """
        if not self.config_path.is_file():
            return
        conflicts = run_conflicts(read_yaml(self.config_path), cfg)
        if conflicts:
            raise ConfigError(f"{self.path} holds another job's run ({'; '.join(conflicts[:4])}); choose another "
                              f"--run-dir, or edit its {self.CONFIG} and run `largegraph resume` to change it on purpose")

    def drop_metrics(self) -> None:
        """Forget every metrics record (a run starting over from step 0)."""
        self.metrics_path.unlink(missing_ok=True)

    def truncate_metrics(self, step: int) -> None:
        """Drop records written after ``step`` (work a crash undid), so a resumed run's log has each
        epoch once. Rewritten atomically: a crash here leaves the old file."""
        keep = [r for r in self.read_metrics() if r.get("step") is None or r["step"] <= step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in keep))

    def create(self, cfg: JobConfig) -> None:
        """Create the directory, give it its run id (once) and write the resolved config."""
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--run-dir {self.path} exists and is not a directory")
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create run directory {self.path}: {exc.strerror}") from None
        self._claim_run_id()
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

    def read_summary(self) -> dict:
        """The finished run's summary (``OSError`` or ``ValueError`` while there is none whole)."""
        return json.loads(self.summary_path.read_text())

    def write_summary(self, summary: dict) -> None:
        atomic_write_text(self.summary_path, json.dumps(summary, indent=2) + "\n")


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
        try:
            # not fsynced: rewritten every few seconds, and a lost one only looks stale
            atomic_write_text(self.path, json.dumps(record) + "\n", durable=False)
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
