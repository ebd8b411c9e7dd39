"""Data parallelism under torch.distributed: torchrun's environment -> rank info, process group,
DDP wrap, and the few collectives the trainer needs.

Workers are started by PyTorch's elastic launcher (``torchrun``), or by ``largegraph train --nproc N``,
which gives them the same environment (see :mod:`largegraph.launcher`). Each worker reads its place
from that environment. A process started any other way is a world of one, and nothing here
touches torch.distributed for it, so the single-process path stays exactly as it was.
"""
from __future__ import annotations

import datetime
import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from largegraph.core.device import DGL_CUDA_HINT, dgl_has_cuda, resolve_device
from largegraph.core.errors import ConfigError, JobError, LargeGraphError, SharedError

T = TypeVar("T")
log = logging.getLogger(__name__)
DEFAULT_TIMEOUT_S = 1800


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands among the workers of one job.

    Attributes:
        rank, world_size, local_rank: as torchrun sets them (0, 1, 0 outside torchrun).
        restart_count: how often torchrun has restarted the worker group (``--max-restarts``).
        run_id: torchrun's rendezvous id: stable across restarts of one launch, and across Slurm
            requeues when set to the job id.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    restart_count: int = 0
    run_id: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def from_env(environ: dict[str, str] | None = None) -> DistEnv:
    """Read torchrun's variables; a plain process is rank 0 of 1."""
    env = os.environ if environ is None else environ

    def number(name: str, default: int) -> int:
        try:
            return int(env.get(name, default))
        except ValueError:
            raise ConfigError(f"environment variable {name}={env[name]!r} is not an integer") from None

    run_id = env.get("TORCHELASTIC_RUN_ID")
    return DistEnv(rank=number("RANK", 0), world_size=number("WORLD_SIZE", 1), local_rank=number("LOCAL_RANK", 0),
                   restart_count=number("TORCHELASTIC_RESTART_COUNT", 0),
                   run_id=None if run_id in (None, "", "none") else run_id)


def pick_device(env: DistEnv, requested: str) -> torch.device:
    """The device of this rank: with CUDA, GPU ``local_rank`` (one GPU per local rank)."""
    if not env.enabled:
        return resolve_device(requested)
    if requested == "cpu" or (requested == "auto" and not dgl_has_cuda()):
        return torch.device("cpu")
    resolve_device("cuda")  # the clear errors for a machine or DGL build without CUDA
    count = torch.cuda.device_count()
    if env.local_rank >= count:
        raise ConfigError(f"local rank {env.local_rank} has no GPU: this node has {count}; start at most "
                          f"{count} workers per node (--nproc / --nproc-per-node)")
    torch.cuda.set_device(env.local_rank)
    return torch.device("cuda", env.local_rank)


def init(env: DistEnv, device: torch.device, backend: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Join the job's process group (a no-op for a world of one).

    Args:
        backend: ``auto`` (NCCL on CUDA, gloo on CPU), ``gloo`` or ``nccl``.
        timeout_s: how long a collective may wait for a peer before failing, instead of hanging
            when a rank dies; evaluation on rank 0 must fit in it.
    """
    if not env.enabled:
        return
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise ConfigError("--backend nccl needs CUDA GPUs (one per worker); use --backend gloo or --device cuda")
    if backend not in ("gloo", "nccl"):
        raise ConfigError(f"--backend must be auto, gloo or nccl, got {backend!r}")
    if device.type == "cuda" and not dgl_has_cuda():
        raise ConfigError(f"this DGL build has no CUDA support; {DGL_CUDA_HINT}")
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))


# Objects that hold the process group, kept until the process exits. Destroying gloo's process
# group while one of its threads still frees a finished collective's tensors deadlocks (the
# destructor joins the thread holding the GIL, the thread waits for the GIL), so a worker never
# tears it down: it exits through `core.processes.exit_now`, like torchrun's own workers would be killed.
_KEEP_ALIVE: list = []


def wrap_model(model: nn.Module, env: DistEnv, device: torch.device, find_unused: bool = False) -> nn.Module:
    """DDP around ``model`` for more than one rank; the model itself otherwise.

    DDP broadcasts rank 0's parameters when it wraps, so all ranks start from the same weights
    (and, after a resume, from the same checkpoint in any case). ``find_unused``: some parameters
    take no part in a step's loss (a typed model's last-layer weights of types the task does not
    read), which DDP must look for after each forward.
    """
    if not env.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)
    _KEEP_ALIVE.append(ddp)
    return ddp


def broadcast(value: T, env: DistEnv) -> T:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not env.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any, env: DistEnv) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not env.enabled:
        return [value]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, value)
    return out


def _comm_device() -> torch.device:
    # NCCL reduces only GPU tensors; gloo takes CPU ones.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_sum(values: list[float], env: DistEnv) -> list[float]:
    """Element-wise sum over ranks (float64: exact for counts)."""
    if not env.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def any_rank(flag: bool, env: DistEnv) -> bool:
    """True on every rank if it is true on any (e.g. "a stop was requested")."""
    if not env.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _attempt(fn: Callable[[], T]) -> tuple[T | None, LargeGraphError | None]:
    """``fn()``'s result, or the input error it raised (anything else is a crash and propagates)."""
    try:
        return fn(), None
    except LargeGraphError as exc:
        return None, exc


def _report(error: LargeGraphError | None) -> tuple[str, int] | None:
    """What other ranks need of an error to stop the same way: its message and exit code."""
    return None if error is None else (str(error), error.exit_code)


def on_main(fn: Callable[[], T], env: DistEnv, share: bool = True) -> T | None:
    """Run ``fn`` on rank 0 only and hand its result (unless ``share`` is False: then ranks > 0
    get None), or its error, to every rank.

    Without this, a rank-0 failure (a corrupt checkpoint, a full disk) would leave the other ranks
    waiting in the next collective until the timeout, and every rank would report the same error.
    """
    if not env.enabled:
        return fn()
    result, error = _attempt(fn) if env.is_main else (None, None)
    shared, message = broadcast((result if share else None, _report(error)), env)
    if error is not None:
        raise error
    if message is not None:
        raise SharedError(*message)
    return result if env.is_main else shared


def together(fn: Callable[[], T], env: DistEnv) -> T:
    """Run ``fn`` on every rank; if it fails on any, every rank raises and the first failing rank
    alone reports why (ranks that failed later, or not at all, raise a quiet SharedError)."""
    if not env.enabled:
        return fn()
    result, error = _attempt(fn)
    reports = gather(_report(error), env)
    failed = [rank for rank, report in enumerate(reports) if report is not None]
    if not failed:
        return result
    if env.rank == failed[0] and error is not None:
        raise error
    raise SharedError(*reports[failed[0]])


def parameters_match(model: nn.Module, env: DistEnv) -> bool:
    """Whether every rank holds bit-identical parameters (a debug check: one gather per call)."""
    if not env.enabled:
        return True
    digest = hashlib.sha256()
    for p in model.parameters():
        digest.update(p.detach().cpu().contiguous().numpy().tobytes())
    digests = gather(digest.hexdigest(), env)
    return all(d == digests[0] for d in digests)


class DDPCheck:
    """Proof that data-parallel ranks stay in lock step and split the data (``LARGEGRAPH_VERIFY_DDP=1``).

    After every step the ranks compare parameter digests; after every whole epoch they check that
    the seeds they trained on are disjoint and together the epoch's order. Off (and free) otherwise.
    """

    def __init__(self, env: DistEnv):
        self.env = env
        self.enabled = env.enabled and os.environ.get("LARGEGRAPH_VERIFY_DDP") == "1"
        self.steps = 0
        self._seen: list | None = None

    def start_epoch(self, offset: int) -> None:
        # Only a whole epoch can be checked for coverage; one resumed mid-way is checked per step.
        self._seen = [] if self.enabled and offset == 0 else None

    def after_step(self, model: nn.Module, batch, step: int) -> None:
        """After optimizer step ``step`` on ``batch`` (a batch record: its ``seed_ids`` are read only
        when the check is on)."""
        if not self.enabled:
            return
        if not parameters_match(model, self.env):
            raise JobError(f"DDP check failed: parameters differ across ranks after step {step}")
        self.steps += 1
        if self._seen is not None:
            self._seen.append(batch.seed_ids.cpu())

    def after_epoch(self, epoch: int, consumed: int, seeds: torch.Tensor) -> None:
        """Every rank's seeds of a whole epoch: disjoint, and together the epoch's consumed order."""
        if self._seen is None:
            return
        mine = torch.cat(self._seen) if self._seen else torch.empty(0, dtype=torch.long)
        everyone = torch.cat(gather(mine, self.env))
        unique = set(everyone.tolist())
        if len(unique) != len(everyone) or len(unique) != consumed or not unique <= set(seeds.tolist()):
            raise JobError(f"DDP check failed: epoch {epoch + 1}: ranks trained on {len(everyone)} seeds, "
                           f"{len(unique)} distinct, expected {consumed} distinct training seeds")
        log.info(f"ddp check: epoch {epoch + 1}: {self.env.world_size} ranks trained on {len(everyone)} seeds, "
                 f"disjoint, covering all {consumed}")

    def finish(self) -> None:
        if self.enabled:
            log.info(f"ddp check: parameters identical on all {self.env.world_size} ranks after each of "
                     f"{self.steps} steps")
