"""The seams of a training run: what the Trainer and the assembly call on the objects they are given.

Each is a :class:`typing.Protocol`, so an implementation (the local graph in this process, DGL's
distributed engine, a test's fake) needs no base class: it has these members, and a type checker
says when it does not. The Trainer holds a :class:`Task` and a :class:`BatchLoader` and never asks
which implementation it got; a :class:`Backend` is how the assembly gets them for a job.

* :class:`Dataset`: what models, loaders and tasks read of a loaded dataset
  (:class:`~largegraph.data.GraphData`, :class:`~largegraph.data.LinkData`).
* :class:`Batch` and :class:`BatchLoader`: one step's record and the epochs of them
  (:mod:`largegraph.sampling.loaders`, :mod:`largegraph.backends.distdgl.loaders`).
* :class:`Task`: the loss, the evaluation and the final outputs (:mod:`largegraph.tasks`).
* :class:`Backend`: supplies the dataset, the loader and the task (:mod:`largegraph.backends`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator, Protocol, Sequence

import torch
from torch import nn

if TYPE_CHECKING:
    from largegraph.config import JobConfig
    from largegraph.data.graph import Storage
    from largegraph.data.sparse import SparseFeatures
    from largegraph.training.distributed import DistEnv
    from largegraph.training.rundir import RunDir


class Dataset(Protocol):
    """A loaded, prepared dataset: its graph, split and scoring, and how its features are held."""

    name: str
    graph: object  # a DGLGraph, or DGL's DistGraph
    split: dict
    metric: str
    evaluator_name: str
    undirected: bool
    storage: Storage  # features read or mapped, the processed-cache folder

    @property
    def num_nodes(self) -> int: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def feat_dim(self) -> int: ...

    @property
    def sparse_feat(self) -> SparseFeatures | None: ...

    def describe(self) -> str: ...


class Batch(Protocol):
    """One training step's record (see :mod:`largegraph.sampling.batches`)."""

    offset: int  # seeds of the epoch's order consumed by all ranks once this batch is done
    input_nodes: torch.Tensor | None
    blocks: Sequence

    @property
    def size(self) -> int: ...

    @property
    def seed_ids(self) -> torch.Tensor: ...


class BatchLoader(Protocol):
    """The epochs of one rank's batches, resumable at any seed offset of an epoch's order."""

    batch_size: int
    seeds: torch.Tensor  # this rank's training seeds (nodes or edges)

    def num_batches(self, start: int = 0) -> int:
        """Batches left in an epoch resumed ``start`` seeds into its order."""

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """Epoch ``epoch``'s batches from seed ``start`` of its order on."""


class Task(Protocol):
    """The loss and the evaluation of one task, for the shared Trainer.

    ``collective``: whether :meth:`evaluate` needs every rank at once (inference over a graph no
    rank holds); otherwise rank 0 evaluates alone and hands its scores to the others.
    """

    metric: str
    collective: bool

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, int]:
        """(mean loss, number of correct predictions in the batch)."""

    def selection_scores(self, model: nn.Module, device: torch.device) -> dict | None:
        """A cheaper validation score for model selection, or None to select by :meth:`evaluate`."""

    def evaluate(self, model: nn.Module, device: torch.device, progress: bool = False,
                 outputs: bool = True) -> dict:
        """``{split}_{metric}`` scores and what :meth:`predictions` needs (all of it when ``outputs``;
        a result marked ``scores_only`` otherwise)."""

    def predictions(self, result: dict) -> dict:
        """What predictions.pt holds for an evaluation ``result``."""

    def embeddings_of(self, result: dict) -> torch.Tensor:
        """What embeddings.pt holds: every node's embedding, in the dataset's node ids."""


class Backend(Protocol):
    """Where a job's dataset, loader and task come from (``distributed.mode``: local or distdgl)."""

    def load_data(self, cfg: JobConfig) -> Dataset:
        """The dataset ``cfg`` names, as this process sees it."""

    def load_on_every_rank(self, cfg: JobConfig, dist: DistEnv, before_others: Callable[[], None]) -> Dataset:
        """Every rank's dataset; ``before_others`` runs on rank 0 before any other rank goes on."""

    def build(self, cfg: JobConfig, data: Dataset, model: nn.Module, device: torch.device,
              dist: DistEnv) -> tuple[BatchLoader, Task]:
        """This rank's training loader and the task, for ``model``."""

    def report(self, data: Dataset, run: RunDir, dist: DistEnv) -> None:
        """Record what each rank trains on, once the dataset is loaded (a collective)."""
