"""One training run, assembled in one place: config -> dataset -> model, loader, task -> trainer.

:func:`assemble` turns the config's sections into built objects; models, loaders and tasks take their
own small settings, never the whole config, and the trainer reads only ``train``. The same code runs
a single process and every worker of a torchrun job; the workers learn their rank from the
environment (see :mod:`largegraph.training.distributed`).
"""
from __future__ import annotations

import json
import os
import time

import torch

from largegraph.core import allocator, fsutil
from largegraph.training import distributed
from largegraph.training.averaging import WeightAverage
from largegraph.training.checkpoint import CheckpointManager, CheckpointStore, has_checkpoints
from largegraph.config import JobConfig, config_digest, dump_config_text, load_config
from largegraph.data.hot_rows import HotRows
from largegraph.core.device import precision_warning
from largegraph.training.distributed import DistEnv
from largegraph.core.errors import CheckpointError, ConfigError, Stopped
from largegraph.training.selection import EvalTracker
from largegraph.training.export import RunExport
from largegraph.training.loggers import RunLoggers
from largegraph.models import EncoderSpec, build_encoder
from largegraph.training.optim import Schedule, build_optimizer
from largegraph.training.report import summary_line, summary_table
from largegraph.core.rng import mix_seed, seed_everything
from largegraph.training.rundir import Heartbeat, RunDir, default_run_dir
from largegraph.sampling import EdgeBatchLoader, NodeBatchLoader, SeededNegatives
from largegraph.core.signals import StopRequest
from largegraph.tasks import link_prediction as lp
from largegraph.tasks.node_classification import NodeClassificationTask, NodeClassifier
from largegraph.training.components import Parts
from largegraph.training.trainer import Trainer


# --- assembly: config sections -> built objects --------------------------------------------------------
def load_data(cfg: JobConfig):
    """The dataset ``cfg.task`` needs, loaded, validated and prepared per ``cfg.data``."""
    if cfg.distributed.mode == "distdgl":  # a trainer of DGL's engine: the graph servers hold the data
        from largegraph.backends.distdgl.data import load_dist_data

        return load_dist_data(cfg)
    from largegraph.data import load_dataset, load_link_data

    return load_link_data(cfg.data) if cfg.task == "link_prediction" else load_dataset(cfg.data)


def _encoder(cfg: JobConfig, in_dim: int):
    spec = EncoderSpec(**cfg.model.model_dump(exclude={"arch"}))
    return build_encoder(cfg.model.arch, spec, in_dim)


def _node_model(cfg: JobConfig, data) -> NodeClassifier:
    if data.feat_dim:
        encoder = _encoder(cfg, data.feat_dim)
        if getattr(data, "sparse_feat", None) is not None:
            encoder.check_sparse_input()  # a first layer that cannot take CSR rows: one line, before any work
        return NodeClassifier(encoder, data.num_classes)
    # No features: a learnable node table of width model.hidden, drawn before the encoder (as for links).
    table = lp.make_embedding(data.num_nodes, cfg.model.hidden)
    return NodeClassifier(_encoder(cfg, cfg.model.hidden), data.num_classes, table)


def _link_model(cfg: JobConfig, data) -> lp.LinkPredictor:
    lc = cfg.link
    embedding = lp.uses_embedding(lc.embedding, data)
    width = (lc.embedding_dim or cfg.model.hidden) if embedding else data.feat_dim
    # the table is drawn before the encoder: initial weights depend on the order of the draws
    table = lp.make_embedding(data.num_nodes, width) if embedding else None
    return lp.build_link_model(_encoder(cfg, width), table, lc.predictor, lc.predictor_layers,
                               lc.predictor_dropout, lc.predictor_input_dropout)


def build_model(cfg: JobConfig, data) -> torch.nn.Module:
    """The model of ``cfg.task`` for ``data`` (weights drawn from the global RNG as it stands)."""
    return _link_model(cfg, data) if cfg.task == "link_prediction" else _node_model(cfg, data)


def _hot_rows(cfg: JobConfig, data) -> HotRows | None:
    """The in-RAM cache of high-degree rows, for mapped features when ``data.feature_cache_mb`` asks."""
    if not cfg.data.feature_cache_mb or data.info.get("features") != "mmap" or "feat" not in data.graph.ndata:
        return None
    return HotRows(data.graph.ndata["feat"], data.graph.in_degrees(), cfg.data.feature_cache_mb * 2**20)


def _node_parts(cfg: JobConfig, data, device: torch.device, dist: DistEnv):
    """(model, loader, task) of node classification."""
    model = _node_model(cfg, data)
    loader = NodeBatchLoader(data.graph, data.split["train"], cfg.sampler, uses_graph=model.encoder.uses_graph,
                             base_seed=cfg.seed, device=device, rank=dist.rank, world_size=dist.world_size,
                             hot_rows=_hot_rows(cfg, data), sparse=data.sparse_feat)
    task = NodeClassificationTask(data, label_smoothing=cfg.train.label_smoothing,
                                  eval_batch_size=cfg.sampler.eval_batch_size,
                                  valid_loader=_valid_loader(cfg, data, model, device, loader.hot_rows) if dist.is_main else None)
    return model, loader, task


# Sampled validation draws its neighbourhoods from this seed, mixed with the job's, never from the
# training batches' stream.
VALID_SEED = 0x5A11D


def _valid_loader(cfg: JobConfig, data, model, device: torch.device, hot_rows: HotRows | None) -> NodeBatchLoader | None:
    """The validation nodes' batches for ``train.validation: sampled`` (and ``auto``), else None."""
    if cfg.train.validation == "exact" or len(data.split["valid"]) == 0:
        return None
    # With sampler worker processes no prefetch thread either: DGL's sampling state in a worker depends
    # on the threads its parent had when it forked, and a thread first started by validation would
    # make the workers of later epochs sample other blocks than those of a run resumed there.
    prefetch = cfg.sampler.prefetch if cfg.sampler.num_workers == 0 else 0
    ordered = cfg.sampler.model_copy(update={"shuffle": False, "drop_last": False, "num_workers": 0,
                                             "prefetch": prefetch})
    return NodeBatchLoader(data.graph, data.split["valid"], ordered, uses_graph=model.encoder.uses_graph,
                           base_seed=mix_seed(cfg.seed, VALID_SEED), device=device, hot_rows=hot_rows,
                           sparse=data.sparse_feat)


def _link_parts(cfg: JobConfig, data, device: torch.device, dist: DistEnv):
    """(model, loader, task) of link prediction."""
    lc = cfg.link
    model = _link_model(cfg, data)
    negatives = SeededNegatives(lc.num_negatives, cfg.seed, lc.negative_sampler == "global_uniform",
                                lc.true_negatives)
    loader = EdgeBatchLoader(data.graph, lp.train_seed_edges(data), cfg.sampler, negatives=negatives,
                             undirected=lp.is_undirected(data), exclude_seed_edges=lc.exclude_seed_edges,
                             base_seed=cfg.seed, device=device, rank=dist.rank, world_size=dist.world_size)
    task = lp.LinkPredictionTask(data, loss_kind=lc.loss, num_negatives=lc.num_negatives, margin=lc.margin,
                                 eval_batch_size=cfg.sampler.eval_batch_size,
                                 score_batch_size=lc.score_batch_size, seed=cfg.seed)
    return model, loader, task


def _dist_node_parts(cfg: JobConfig, data, device: torch.device, dist: DistEnv):
    """(model, loader, task) of node classification on DGL's engine (``data.graph`` a DistGraph)."""
    from largegraph.backends.distdgl.evaluation import DistNodeClassificationTask
    from largegraph.backends.distdgl.loaders import DistNodeLoader

    model = _node_model(cfg, data)
    loader = DistNodeLoader(data.graph, data.split["train"], cfg.sampler, base_seed=cfg.seed, device=device, dist=dist)
    task = DistNodeClassificationTask(data, dist=dist, part_config=cfg.distributed.part_config,
                                      label_smoothing=cfg.train.label_smoothing,
                                      eval_batch_size=cfg.sampler.eval_batch_size,
                                      embeddings=cfg.train.export_embeddings)
    return model, loader, task


def _dist_link_parts(cfg: JobConfig, data, device: torch.device, dist: DistEnv):
    """(model, loader, task) of link prediction on DGL's engine (``data.graph`` a DistGraph)."""
    from largegraph.backends.distdgl.evaluation import DistLinkPredictionTask
    from largegraph.backends.distdgl.loaders import DistEdgeLoader

    lc = cfg.link
    if cfg.sampler.full_graph:
        raise ConfigError("sampler.full_graph runs every step over the whole graph in one process; with "
                          "distributed.mode: distdgl sample blocks (sampler.full_graph: false)")
    model = _link_model(cfg, data)
    loader = DistEdgeLoader(data.graph, data.info["train_seeds"], cfg.sampler, num_negatives=lc.num_negatives,
                            reverse_eids=data.info["reverse_eids"] if lc.exclude_seed_edges else None,
                            exclude_self=lc.exclude_seed_edges and not data.info["undirected"],
                            base_seed=cfg.seed, device=device, dist=dist)
    task = DistLinkPredictionTask(data, loss_kind=lc.loss, num_negatives=lc.num_negatives, margin=lc.margin,
                                  eval_batch_size=cfg.sampler.eval_batch_size, score_batch_size=lc.score_batch_size,
                                  seed=cfg.seed)
    task.dist, task.part_config = dist, cfg.distributed.part_config
    return model, loader, task


def build_components(cfg: JobConfig, data, device: torch.device, dist: DistEnv | None = None):
    """(model, loader, task) of ``cfg.task`` for this rank (the model's weights drawn from the
    global RNG as it stands)."""
    dist = dist or DistEnv()
    if data.info.get("distdgl"):
        build = _dist_link_parts if cfg.task == "link_prediction" else _dist_node_parts
        return build(cfg, data, device, dist)
    build = _link_parts if cfg.task == "link_prediction" else _node_parts
    return build(cfg, data, device, dist)


def assemble(cfg: JobConfig, data, run: RunDir, device: torch.device, dist: DistEnv | None = None,
             warn=None) -> Parts:
    """Everything a :class:`Trainer` drives, built from ``cfg`` for this rank.

    Every rank starts from the same initial weights (seeded by ``cfg.seed``) and then draws its
    own dropout stream. ``run`` must exist already (:meth:`RunDir.create`).
    """
    dist = dist or DistEnv()
    seed_everything(cfg.seed)
    # Before DDP's first collective: a rank that cannot build its loader stops all of them.
    model, loader, task = distributed.together(lambda: build_components(cfg, data, device, dist), dist)
    model = model.to(device)
    if dist.rank:
        seed_everything(mix_seed(cfg.seed, dist.rank))
    optimizer = build_optimizer(cfg.train, model.parameters())
    ck = cfg.checkpoint
    store = CheckpointStore(run.checkpoints, cfg.fingerprint(), run.run_id(), ck.keep_last, ck.keep_best)
    return Parts(
        model=model, train_model=distributed.wrap_model(model, dist, device), loader=loader, task=task,
        optimizer=optimizer, schedule=Schedule(cfg.train, optimizer), average=WeightAverage(model, cfg.train.ema_decay),
        # a collective evaluation runs on every rank, so every rank must restore the same best weights
        tracker=EvalTracker(task.metric, cfg.train.early_stopping_patience,
                            keep_weights=dist.is_main or getattr(task, "collective", False)),
        checkpoints=CheckpointManager(store, ck, dist, warn=warn or _warn),
        export=RunExport(run, task, cfg.train.export_embeddings), run=run, device=device, seed=cfg.seed, dist=dist,
        loggers=RunLoggers(cfg.train.loggers, run, cfg, enabled=dist.is_main))


# --- the run ------------------------------------------------------------------------------------------
def _warn(message: str) -> None:
    import sys

    print(f"largegraph: warning: {message}", file=sys.stderr, flush=True)


def check_run_dir(run_dir: str) -> RunDir:
    """The run directory ``largegraph resume`` continues (it must hold its resolved config)."""
    return RunDir.existing(run_dir, RunDir.CONFIG, CheckpointError)


def resume_run(run_dir: str, *, device: str = "auto", **dist_options) -> str:
    """Continue the run in ``run_dir`` with its own resolved config (``largegraph resume``)."""
    run = check_run_dir(run_dir)
    return run_training(str(run.config_path), [], run_dir=str(run.path), device=device, resume="auto", **dist_options)


def heartbeat_interval() -> float:
    try:
        return max(0.1, float(os.environ.get("LARGEGRAPH_HEARTBEAT_S", "10")))
    except ValueError:
        raise ConfigError("LARGEGRAPH_HEARTBEAT_S must be a number of seconds") from None


def run_training(config_path: str, overrides: list[str], *, run_dir: str | None = None,
                 device: str = "auto", resume: str = "auto", backend: str = "auto",
                 dist_timeout: float = distributed.DEFAULT_TIMEOUT_S) -> str:
    """Train the job a YAML file describes and return its one-line summary ("" on ranks > 0).

    Args:
        config_path: YAML job file.
        overrides: dotted ``key=value`` overrides.
        run_dir: output directory (default ``runs/<name>-<UTC time>``, or ``runs/<name>-<rdzv id>``
            under torchrun).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (under torchrun: GPU ``LOCAL_RANK``).
        resume: ``auto`` continues from the run directory's newest valid checkpoint; ``never`` refuses
            to reuse a directory that already holds checkpoints; any other value is the path of a
            checkpoint of this run directory to continue from. Workers that torchrun restarted
            always continue from the newest checkpoint.
        backend: torch.distributed backend under torchrun: ``auto`` (NCCL on GPU, gloo on CPU).
        dist_timeout: seconds a rank waits for its peers before failing instead of hanging.
    """
    from largegraph.backends.distdgl import roles

    # SIGTERM from here on is a request to checkpoint and stop, however early it comes.
    with StopRequest() as stop:
        cfg = load_config(config_path, overrides)
        if roles.role() == roles.SERVER:
            roles.serve()  # never returns
        if roles.is_trainer():
            roles.join()  # DGL's engine before torch.distributed
            stop.reclaim()
        env = distributed.from_env()
        dev = distributed.pick_device(env, device)
        distributed.init(env, dev, backend, dist_timeout)
        try:
            line = _train(cfg, env, dev, run_dir, "auto" if env.restart_count else resume, stop)
        except Stopped:
            if roles.is_trainer():
                roles.leave()  # every trainer stops at the same step: all of them leave together
            raise
        if roles.is_trainer():
            roles.leave()
        return line


def finished_summary(run: RunDir, cfg: JobConfig) -> dict | None:
    """The summary of the run in ``run`` if it finished the very job ``cfg`` describes, else None.

    Training it again would only repeat its final exact evaluation (minutes on a large graph) to
    print the line it already wrote; any change to the job (more epochs, say) trains on instead.
    """
    try:
        summary = json.loads(run.summary_path.read_text())
    except (OSError, ValueError):
        return None
    # The digest of the config the run finished with, not the run directory's config file: an
    # operator extending a run edits that file and resumes (summaries without one never match).
    same_job = isinstance(summary, dict) and summary.get("config_digest") == config_digest(dump_config_text(cfg))
    return summary if same_job and "metric" in summary else None


def _open_run_dir(cfg: JobConfig, env: DistEnv, run_dir: str | None,
                  resume: str) -> tuple[RunDir, bool, dict | None]:
    """The run directory every rank agrees on, whether it already holds checkpoints, and its summary
    if it is a finished run of this same job."""
    def choose() -> tuple[str, bool, dict | None]:
        run = RunDir(run_dir or default_run_dir(cfg, launch_id=env.run_id))
        held = has_checkpoints(run.checkpoints)
        if held and resume == "never":
            raise ConfigError(f"{run.path} already holds checkpoints; pass --resume auto to continue it or "
                              f"choose another --run-dir")
        if resume not in ("auto", "never") and not run_dir:
            raise ConfigError("--resume PATH needs --run-dir: the checkpoint must belong to that run directory")
        return str(run.path), held, finished_summary(run, cfg) if resume == "auto" else None

    path, held, finished = distributed.on_main(choose, env)
    return RunDir(path), held, finished


def _report_shares(data, run: RunDir, env: DistEnv, say) -> None:
    """Which training nodes each distdgl trainer walks (``distdgl/trainers.json``, and one line each)."""
    shares = distributed.gather(data.info["share"], env)
    if not env.is_main:
        return
    for rank, share in enumerate(shares):
        count, what = (share["train_nodes"], "nodes") if "train_nodes" in share else (share["train_edges"], "edges")
        say(f"distdgl trainer {rank}: {count} training {what}, {share['own_partition']} of them in its "
            f"own partition {share['partition']}")
    (run.path / "distdgl").mkdir(exist_ok=True)
    fsutil.atomic_write_text(run.path / "distdgl" / "trainers.json", json.dumps(shares, indent=1), durable=False)


def _train(cfg: JobConfig, env: DistEnv, dev, run_dir: str | None, resume: str, stop: StopRequest) -> str:
    say = (lambda line: print(line, flush=True)) if env.is_main else (lambda line: None)
    run, held, finished = _open_run_dir(cfg, env, run_dir, resume)
    if finished is not None:
        metric = finished["metric"]
        say(f"{run.path} already finished this job; its result, from {run.SUMMARY}:")
        say(summary_table(run, metric))
        return summary_line(finished, metric) if env.is_main else ""
    start = time.perf_counter()
    # Rank 0 first: it reports a missing or bad dataset once, and fills OGB's processed-graph cache
    # that the other ranks then read instead of all parsing the raw files at once. It also creates
    # the run directory and its id before any other rank reads them.
    with allocator.system_defaults():  # one-off large arrays: kept blocks would only pile up
        if cfg.distributed.mode == "distdgl":
            # every trainer joins the DistGraph at once (its set-up talks to all servers)
            data = load_data(cfg)
            distributed.on_main(lambda: run.create(cfg), env, share=False)
        else:
            data = distributed.on_main(lambda: load_data(cfg), env, share=False)
            distributed.on_main(lambda: run.create(cfg), env, share=False)
            if not env.is_main:
                data = load_data(cfg)
    say(f"dataset {data.describe()} (loaded in {time.perf_counter() - start:.1f}s)")
    if data.info.get("distdgl"):
        _report_shares(data, run, env, say)
    parts = assemble(cfg, data, run, dev, env)
    trainer = Trainer(cfg.train, parts, stop=stop, log=say)
    if resume not in ("auto", "never"):
        trainer.resume(resume)
    elif not (held and trainer.resume()):
        trainer.start_fresh()
    params = sum(p.numel() for p in parts.model.parameters())
    workers = f" x {env.world_size} workers" if env.enabled else ""
    say(f"model {cfg.model.arch} ({params:,} parameters) on {dev}{workers}; run dir {run.path}")
    slow = precision_warning(cfg.train.precision, dev)
    if slow and env.is_main:
        _warn(slow)
    if not env.is_main:
        trainer.fit()
        return ""
    with Heartbeat(run.heartbeat_path, heartbeat_interval(), lambda: trainer.step):
        summary = trainer.fit()
    say(summary_table(run, parts.task.metric))
    return summary_line(summary, parts.task.metric)
