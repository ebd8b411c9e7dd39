"""Where a run's numbers go (``train.loggers``): ``jsonl`` is the run's record, ``metrics.jsonl``,
which report, resume and the job service read, and is always written (by the trainer, through
:class:`~largegraph.training.rundir.RunDir`); ``tensorboard`` also writes TensorBoard event files under
``<run dir>/tensorboard/``: per-step loss, learning rate and throughput, per-epoch figures and
metrics, and the resolved config as text.

Only rank 0 logs. A resumed run starts its event files with ``purge_step`` at the resumed step, so
TensorBoard discards what the interrupted attempt logged after its last checkpoint (as
``metrics.jsonl`` is truncated), and every step appears once.
"""
from __future__ import annotations

import time

from largegraph.config import JobConfig, dump_config_text
from largegraph.core.errors import ConfigError
from largegraph.training.rundir import RunDir

# Epoch-record keys that are not scalars worth plotting.
_NOT_SCALARS = {"kind", "epoch", "step"}


def require_tensorboard():
    """torch's SummaryWriter, or a one-line error naming the extra to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("train.loggers lists tensorboard, but the tensorboard package is not installed: "
                          "pip install 'largegraph[tensorboard]' (or drop tensorboard from train.loggers)") from None
    return SummaryWriter


class RunLoggers:
    """The run's extra loggers (TensorBoard); a no-op when there are none or on ranks > 0.

    Args:
        names: ``train.loggers``.
        run: the run directory.
        cfg: the resolved config, logged as text.
        enabled: False on ranks > 0.
    """

    def __init__(self, names: tuple[str, ...] | list[str] = (), run: RunDir | None = None,
                 cfg: JobConfig | None = None, enabled: bool = True):
        self.writer = None
        self._cfg = cfg
        self._last = None  # time of the previous step, for throughput
        if enabled and "tensorboard" in names:
            self._writer_cls = require_tensorboard()
            self._dir = run.tensorboard_path
        else:
            self._writer_cls = None

    def start(self, step: int) -> None:
        """Open the writers at global step ``step`` (0, or where a resumed run continues)."""
        if self._writer_cls is None:
            return
        self.writer = self._writer_cls(log_dir=str(self._dir), purge_step=step or None)
        if step == 0:
            text = dump_config_text(self._cfg)
            # Indented: TensorBoard renders text as Markdown, where four spaces make a code block.
            self.writer.add_text("config", "\n".join("    " + line for line in text.splitlines()), 0)
        self._last = None

    def step(self, step: int, loss: float, lr: float, examples: int) -> None:
        """One optimizer step's scalars (examples: training seeds of this rank's batch)."""
        if self.writer is None:
            return
        now = time.perf_counter()
        self.writer.add_scalar("step/loss", loss, step)
        self.writer.add_scalar("step/lr", lr, step)
        if self._last is not None and now > self._last:
            self.writer.add_scalar("step/examples_per_s", examples / (now - self._last), step)
        self._last = now

    def epoch(self, record: dict) -> None:
        """An epoch record (as written to metrics.jsonl): every numeric figure, at the record's step."""
        if self.writer is None:
            return
        for key, value in record.items():
            if key in _NOT_SCALARS or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            self.writer.add_scalar(f"epoch/{key}", value, record["step"])
        self.writer.flush()
        self._last = None  # evaluation time is not step time

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
