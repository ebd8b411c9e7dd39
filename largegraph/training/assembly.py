"""The one place a run is assembled: config -> dataset -> model, loader, task -> :class:`Components`.

Models, loaders and tasks take their own small settings, never the whole config; the trainer reads
only ``train``. Where the dataset, the loader and the task come from is the :class:`Backend`'s
business (this process's graph, or DGL's engine: :mod:`largegraph.backends`), picked once per job
from ``distributed.mode`` by :func:`largegraph.backends.backend_for`; what is built around them here
is the same for every backend. ``train``, ``predict``/``embed``, ``partition`` and ``bench`` build
their objects through this module.
"""
from __future__ import annotations

import torch

from largegraph.config import JobConfig
from largegraph.core.rng import mix_seed, seed_everything
from largegraph.models import EncoderSpec, build_encoder, build_typed_encoder
from largegraph.tasks import link_prediction as lp
from largegraph.tasks.node_classification import NodeClassifier
from largegraph.tasks.typed_link import TypedLinkPredictor
from largegraph.tasks.typed_node import TypedNodeClassifier
from largegraph.training import distributed
from largegraph.training.averaging import WeightAverage
from largegraph.training.checkpoint import CheckpointManager, CheckpointStore
from largegraph.training.components import Components
from largegraph.training.distributed import DistEnv
from largegraph.training.export import RunExport
from largegraph.training.loggers import RunLoggers
from largegraph.training.optim import Schedule, build_optimizer
from largegraph.training.protocols import Backend, BatchLoader, Dataset, Task
from largegraph.training.rundir import RunDir
from largegraph.training.selection import EvalTracker
from largegraph.training.typed import check_fits, is_typed


def _spec(cfg: JobConfig) -> EncoderSpec:
    return EncoderSpec(**cfg.model.model_dump(exclude={"arch"}))


def _encoder(cfg: JobConfig, in_dim: int):
    return build_encoder(cfg.model.arch, _spec(cfg), in_dim)


def _node_model(cfg: JobConfig, data: Dataset) -> NodeClassifier:
    if data.feat_dim:
        encoder = _encoder(cfg, data.feat_dim)
        if data.sparse_feat is not None:
            encoder.check_sparse_input()  # a first layer that cannot take CSR rows: one line, before any work
        return NodeClassifier(encoder, data.num_classes)
    # No features: a learnable node table of width model.hidden, drawn before the encoder (as for links).
    table = lp.make_embedding(data.num_nodes, cfg.model.hidden)
    return NodeClassifier(_encoder(cfg, cfg.model.hidden), data.num_classes, table)


def _link_model(cfg: JobConfig, data: Dataset) -> lp.LinkPredictor:
    lc = cfg.link
    embedding = lp.uses_embedding(lc.embedding, data)
    width = (lc.embedding_dim or cfg.model.hidden) if embedding else data.feat_dim
    # the table is drawn before the encoder: initial weights depend on the order of the draws
    table = lp.make_embedding(data.num_nodes, width) if embedding else None
    return lp.build_link_model(_encoder(cfg, width), table, lc.predictor, lc.predictor_layers,
                               lc.predictor_dropout, lc.predictor_input_dropout)


def _typed_node_model(cfg: JobConfig, data) -> TypedNodeClassifier:
    tables, encoder = build_typed_encoder(cfg.model.arch, _spec(cfg), data.graph)
    return TypedNodeClassifier(tables, encoder, data.num_classes, data.target)


def _typed_link_model(cfg: JobConfig, data) -> TypedLinkPredictor:
    lc = cfg.link
    tables, encoder = build_typed_encoder(cfg.model.arch, _spec(cfg), data.graph)
    scorer = lp.make_scorer(encoder.out_dim, lc.predictor, lc.predictor_layers, lc.predictor_dropout,
                            lc.predictor_input_dropout)
    return TypedLinkPredictor(tables, encoder, scorer, data.target)


# (typed dataset?, task) -> model builder; :func:`largegraph.training.typed.is_typed` is the one question asked
MODELS = {(False, "node_classification"): _node_model, (False, "link_prediction"): _link_model,
          (True, "node_classification"): _typed_node_model, (True, "link_prediction"): _typed_link_model}


def build_model(cfg: JobConfig, data: Dataset) -> torch.nn.Module:
    """The model of ``cfg.task`` for ``data`` (weights drawn from the global RNG as it stands).

    Raises:
        ConfigError: a typed setting on an untyped dataset, or the reverse.
    """
    check_fits(cfg, data)
    return MODELS[is_typed(data), cfg.task](cfg, data)


def build_components(cfg: JobConfig, backend: Backend, data: Dataset, device: torch.device,
                     dist: DistEnv | None = None) -> tuple[torch.nn.Module, BatchLoader, Task]:
    """(model, loader, task) of ``cfg.task`` for this rank (the model's weights drawn from the
    global RNG as it stands)."""
    dist = dist or DistEnv()
    model = build_model(cfg, data)
    loader, task = backend.build(cfg, data, model, device, dist)
    return model, loader, task


def assemble(cfg: JobConfig, backend: Backend, data: Dataset, run: RunDir, device: torch.device,
             dist: DistEnv | None = None) -> Components:
    """Everything a :class:`~largegraph.training.trainer.Trainer` drives, built from ``cfg`` for this rank.

    Every rank starts from the same initial weights (seeded by ``cfg.seed``) and then draws its
    own dropout stream. ``run`` must exist already (:meth:`RunDir.create`).
    """
    dist = dist or DistEnv()
    seed_everything(cfg.seed)
    # Before DDP's first collective: a rank that cannot build its loader stops all of them.
    model, loader, task = distributed.together(lambda: build_components(cfg, backend, data, device, dist), dist)
    model = model.to(device)
    if dist.rank:
        seed_everything(mix_seed(cfg.seed, dist.rank))
    optimizer = build_optimizer(cfg.train, model.parameters())
    ck = cfg.checkpoint
    store = CheckpointStore(run.checkpoints, cfg.fingerprint(), run.run_id(), ck.keep_last, ck.keep_best)
    return Components(
        model=model, train_model=distributed.wrap_model(model, dist, device, find_unused=is_typed(data)), loader=loader, task=task,
        optimizer=optimizer, schedule=Schedule(cfg.train, optimizer), average=WeightAverage(model, cfg.train.ema_decay),
        # a collective evaluation runs on every rank, so every rank must restore the same best weights
        tracker=EvalTracker(task.metric, cfg.train.early_stopping_patience, keep_weights=dist.is_main or task.collective),
        checkpoints=CheckpointManager(store, ck, dist),
        export=RunExport(run, task, cfg.train.export_embeddings), run=run, device=device, seed=cfg.seed, dist=dist,
        loggers=RunLoggers(cfg.train.loggers, run, cfg, enabled=dist.is_main))
