"""The only code that reads, writes or names checkpoint files, and decides when to write them.

A checkpoint is ``checkpoints/step-<global step>.pt`` (tensors and plain Python values only, loadable
with ``torch.load(weights_only=True)``) plus ``step-<global step>.json``, its manifest: SHA-256 of the
``.pt`` file, epoch, config fingerprint and library versions. The manifest is written last, so a
checkpoint without one is incomplete and ignored. Every file goes through write-to-temp, fsync,
rename, directory fsync: a crash at any instant leaves the previous checkpoint intact.

:class:`CheckpointStore` is the files; :class:`CheckpointManager` the policy over them (when to save,
what a failed write does, which checkpoint a run resumes from), for every rank of a run.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from largegraph.training import distributed
from largegraph.config import CheckpointConfig
from largegraph.training.distributed import DistEnv
from largegraph.core.errors import CheckpointError
from largegraph.core.fsutil import atomic_write_bytes, remove_leftovers
from largegraph.core.rng import capture_rng, mix_seed, restore_rng, seed_everything

log = logging.getLogger(__name__)

class CheckpointMismatch(CheckpointError):
    """A sound checkpoint that must not be resumed here (another run, another model config)."""


_NAME = re.compile(r"^step-(\d{10})\.json$")


def checkpoint_name(step: int) -> str:
    """``step-0000000042``: the name of global step 42's checkpoint (without suffix)."""
    return f"step-{step:010d}"


def save_tensors(path: Path, obj: Any) -> str:
    """Atomically ``torch.save`` ``obj`` to ``path``; returns its SHA-256."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    atomic_write_bytes(path, payload)
    return hashlib.sha256(payload).hexdigest()


def versions() -> dict[str, str]:
    import dgl

    return {"python": platform.python_version(), "torch": torch.__version__, "dgl": dgl.__version__}


@dataclass
class CheckpointStore:
    """Checkpoints of one run directory.

    Args:
        directory: ``<run_dir>/checkpoints``.
        fingerprint: config fingerprint a checkpoint must carry to be resumed.
        run_id: identity of the run directory; a checkpoint from another run is refused.
        keep_last: how many of the newest complete checkpoints to keep.
        keep_best: also keep the checkpoint with the best validation score.
    """

    directory: Path
    fingerprint: str
    run_id: str = ""
    keep_last: int = 2
    keep_best: bool = False

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)

    def save(self, step: int, state: dict, meta: dict | None = None) -> Path:
        """Write ``state`` as the checkpoint of global step ``step`` and prune old ones.

        Raises:
            CheckpointError: the write failed (disk full, permissions); earlier checkpoints are intact.
        """
        stem, manifest_path = checkpoint_name(step), self.manifest_path(step)
        payload_path = manifest_path.with_suffix(".pt")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            digest = save_tensors(payload_path, state)
            manifest = {"step": step, "sha256": digest, "fingerprint": self.fingerprint, "run_id": self.run_id,
                        "versions": versions(), **(meta or {})}
            atomic_write_bytes(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())
        except OSError as exc:
            # A .pt without its manifest is an incomplete checkpoint that resume ignores; remove it to
            # give the space back.
            if not manifest_path.exists():
                payload_path.unlink(missing_ok=True)
            kept = self.manifests()
            previous = kept[-1].stem if kept else "none"
            raise CheckpointError(f"could not write checkpoint {stem} in {self.directory}: "
                                  f"{exc.strerror or exc}; the previous checkpoint ({previous}) is intact") from None
        self._prune()
        return payload_path

    def manifest_path(self, step: int) -> Path:
        """Where global step ``step``'s manifest is (its tensors are beside it, as ``.pt``)."""
        return self.directory / f"{checkpoint_name(step)}.json"

    def manifests(self) -> list[Path]:
        """Complete checkpoints (those with a manifest), oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if _NAME.match(p.name))

    def _best(self) -> Path | None:
        best, best_score = None, None
        for manifest in self.manifests():
            try:
                score = json.loads(manifest.read_text()).get("score")
            except (OSError, ValueError):
                continue
            if score is not None and (best_score is None or score > best_score):
                best, best_score = manifest, score
        return best

    def _prune(self) -> None:
        keep = set(self.manifests()[-self.keep_last:])
        if self.keep_best and (best := self._best()) is not None:
            keep.add(best)
        for manifest in self.manifests():
            if manifest not in keep:
                manifest.unlink(missing_ok=True)  # manifest first: a half-pruned checkpoint is simply incomplete
                manifest.with_suffix(".pt").unlink(missing_ok=True)
        remove_leftovers(self.directory)  # of writes a crash interrupted

    def load(self, manifest_path: Path) -> tuple[dict, dict]:
        """Verify and load one checkpoint. Raises CheckpointError if it is corrupt or foreign."""
        try:
            manifest = json.loads(manifest_path.read_text())
            payload = manifest_path.with_suffix(".pt").read_bytes()
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{manifest_path.name}: unreadable ({exc})") from None
        if hashlib.sha256(payload).hexdigest() != manifest.get("sha256"):
            raise CheckpointError(f"{manifest_path.with_suffix('.pt').name}: checksum mismatch (truncated or corrupt)")
        if self.run_id and manifest.get("run_id") != self.run_id:
            raise CheckpointMismatch(f"{manifest_path}: belongs to another run ({manifest.get('run_id')}), "
                                  f"not to this run directory ({self.run_id})")
        if manifest.get("fingerprint") != self.fingerprint:
            raise CheckpointMismatch(
                f"{manifest_path.name} was written for a different model/task config "
                f"({manifest.get('fingerprint')} != {self.fingerprint}); resume with the run's own "
                f"config.resolved.yaml, or start a new --run-dir")
        try:
            state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        except Exception as exc:  # the unpickler refuses anything but tensors and plain values
            raise CheckpointError(f"{manifest_path.with_suffix('.pt').name}: refused to load ({exc})") from None
        return state, manifest

    def resolve(self, path: str | Path) -> Path:
        """The manifest of a checkpoint named by ``--resume PATH`` (its .json or .pt file)."""
        path = Path(path)
        manifest = path.with_suffix(".json") if path.suffix == ".pt" else path
        if not manifest.is_file():
            raise CheckpointError(f"--resume {path}: no checkpoint manifest at {manifest}")
        return manifest

    def latest(self) -> tuple[dict, dict] | None:
        """The newest checkpoint that verifies, skipping (with a warning) corrupt ones.

        Raises:
            CheckpointMismatch: the newest sound checkpoint belongs to another run or config; falling
                back to an older one, or starting over, would silently throw work away.
        """
        for manifest in reversed(self.manifests()):
            try:
                return self.load(manifest)
            except CheckpointMismatch:
                raise
            except CheckpointError as exc:
                log.warning(f"skipping checkpoint {exc}")
        return None


def has_checkpoints(directory: Path) -> bool:
    """Whether ``directory`` holds at least one complete checkpoint."""
    return bool(CheckpointStore(directory, "").manifests())


class CheckpointManager:
    """The checkpoint policy of one run, the same object on every rank.

    Rank 0 alone writes and picks; the others learn its choice and load the same checkpoint.

    Args:
        store: the run's checkpoint files.
        cfg: the ``checkpoint`` section (save intervals, what a failed save does).
        dist: this process's place among the ranks.
    """

    def __init__(self, store: CheckpointStore, cfg: CheckpointConfig, dist: DistEnv | None = None):
        self.store = store
        self.cfg = cfg
        self.dist = dist or DistEnv()

    def due_in_epoch(self, step: int, last_batch: bool) -> bool:
        """Whether to checkpoint after ``step`` inside an epoch (its last batch saves at epoch end)."""
        every = self.cfg.every_n_steps
        return bool(every) and step % every == 0 and not last_batch

    def due_after_epoch(self, epochs_done: int, final: bool) -> bool:
        return final or epochs_done % self.cfg.every_n_epochs == 0

    def save(self, step: int, state: Callable[[], dict], meta: dict, final: bool = False) -> None:
        """Checkpoint global step ``step`` (every rank calls it; rank 0 builds ``state()`` and writes).

        A failed write stops the run unless ``checkpoint.on_save_error`` is ``continue``; the final
        checkpoint's failure always does, since nothing after it would save the run's end.
        """
        # every rank's RNG streams, so that each resumes its own (a collective, before rank 0 writes)
        rngs = distributed.gather(capture_rng(), self.dist) if self.dist.enabled else None

        def write() -> None:
            try:
                self.store.save(step, {**state(), "rng_ranks": rngs} if rngs else state(), meta)
            except CheckpointError as exc:
                if self.cfg.on_save_error == "fail" or final:
                    raise
                log.warning(f"{exc}; training goes on (checkpoint.on_save_error=continue)")

        distributed.on_main(write, self.dist)

    def pick(self, checkpoint: str | None = None) -> tuple[dict, dict] | None:
        """Load ``checkpoint`` (a path) or, if None, the newest one that verifies, on every rank.

        Returns:
            (state, manifest), or None when there is nothing to resume from.
        Raises:
            CheckpointError: a named checkpoint is corrupt, foreign, or for another config.
        """
        found: dict = {}

        def choose() -> str | None:
            if checkpoint is not None:
                return str(self.store.resolve(checkpoint))
            latest = self.store.latest()
            if latest is None:
                return None
            found["it"] = latest  # rank 0 has verified and loaded it: not read twice
            return str(self.store.manifest_path(int(latest[1]["step"])))

        path = distributed.on_main(choose, self.dist)
        if path is None:
            return None
        return found.get("it") or self.store.load(Path(path))


def restore_rank_rng(state: dict, dist: DistEnv, seed: int, step: int) -> None:
    """This rank's RNG streams from checkpoint ``state``: its own if the saved run had as many ranks
    (rank 0's otherwise for rank 0); a rank the saved run did not have gets a fresh stream, still a
    function of the position (``seed``, rank, ``step``)."""
    ranks = state.get("rng_ranks") or [state["rng"]]
    if len(ranks) == dist.world_size or dist.rank == 0:
        restore_rng(ranks[dist.rank] if len(ranks) == dist.world_size else state["rng"])
    else:
        seed_everything(mix_seed(seed, dist.rank, step))
