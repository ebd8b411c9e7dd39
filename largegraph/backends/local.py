"""The local backend: the whole prepared graph in this process (and in every torchrun worker of it).

It loads the dataset from the processed cache, samples batches with DGL's loaders over the local
graph (:mod:`largegraph.sampling`), and evaluates with layer-wise inference in this process.
"""
from __future__ import annotations

from typing import Callable

import torch

from largegraph.config import JobConfig, SamplerConfig
from largegraph.core.rng import mix_seed
from largegraph.data import GraphData, LinkData, load_dataset, load_link_data
from largegraph.data.hetero import HeteroGraphData, HeteroLinkData
from largegraph.data.hot_rows import HotRows
from largegraph.sampling import EdgeBatchLoader, NodeBatchLoader, SeededNegatives
from largegraph.sampling.typed import TypedEdgeBatchLoader, TypedNegatives, TypedNodeBatchLoader
from largegraph.tasks import link_prediction as lp
from largegraph.tasks.node_classification import NodeClassificationTask
from largegraph.tasks.typed_link import TypedLinkPredictionTask, train_relation_edges
from largegraph.tasks.typed_node import TypedNodeClassificationTask
from largegraph.training import distributed
from largegraph.training.distributed import DistEnv
from largegraph.training.rundir import RunDir
from largegraph.training.typed import fit_dataset, is_typed

# Sampled validation draws its neighbourhoods from this seed, mixed with the job's, never from the
# training batches' stream.
VALID_SEED = 0x5A11D


class LocalBackend:
    """Dataset, loader and task over the graph this process holds (``distributed.mode: local``)."""

    def load_data(self, cfg: JobConfig) -> GraphData | LinkData:
        """The dataset ``cfg.task`` needs, loaded, validated and prepared per ``cfg.data``, as ``cfg.model``
        trains on it (:func:`~largegraph.training.typed.fit_dataset`)."""
        data = load_link_data(cfg.data) if cfg.task == "link_prediction" else load_dataset(cfg.data)
        return fit_dataset(cfg, data)

    def load_on_every_rank(self, cfg: JobConfig, dist: DistEnv, before_others: Callable[[], None]):
        """Rank 0 first: it reports a missing or bad dataset once, and fills the processed cache that
        the other ranks then map instead of all parsing the raw files at once."""
        data = distributed.on_main(lambda: self.load_data(cfg), dist, share=False)
        distributed.on_main(before_others, dist, share=False)
        return data if dist.is_main else self.load_data(cfg)

    def build(self, cfg: JobConfig, data, model: torch.nn.Module, device: torch.device, dist: DistEnv):
        """(loader, task) of ``cfg.task`` for this rank."""
        return PARTS[is_typed(data), cfg.task](cfg, data, model, device, dist)

    def report(self, data, run: RunDir, dist: DistEnv) -> None:
        """Nothing to add: every rank holds the whole graph."""


def _hot_rows(cfg: JobConfig, data: GraphData) -> HotRows | None:
    """The in-RAM cache of high-degree rows, for mapped features when ``data.feature_cache_mb`` asks."""
    if not cfg.data.feature_cache_mb or data.storage.features != "mmap" or "feat" not in data.graph.ndata:
        return None
    return HotRows(data.graph.ndata["feat"], data.graph.in_degrees(), cfg.data.feature_cache_mb * 2**20)


def _node_parts(cfg: JobConfig, data: GraphData, model, device: torch.device, dist: DistEnv):
    """(loader, task) of node classification."""
    loader = NodeBatchLoader(data.graph, data.split["train"], cfg.sampler, uses_graph=model.encoder.uses_graph,
                             base_seed=cfg.seed, device=device, rank=dist.rank, world_size=dist.world_size,
                             hot_rows=_hot_rows(cfg, data), sparse=data.sparse_feat)
    valid = valid_loader(cfg, data, model, device, loader.hot_rows) if dist.is_main else None
    task = NodeClassificationTask(data, label_smoothing=cfg.train.label_smoothing,
                                  eval_batch_size=cfg.sampler.eval_batch_size, valid_loader=valid)
    return loader, task


def _valid_sampler(cfg: JobConfig, data) -> SamplerConfig | None:
    """Sampler settings of the validation nodes' batches for ``train.validation: sampled`` (and
    ``auto``), else None."""
    if cfg.train.validation == "exact" or len(data.split["valid"]) == 0:
        return None
    # With sampler worker processes no prefetch thread either: DGL's sampling state in a worker depends
    # on the threads its parent had when it forked, and a thread first started by validation would
    # make the workers of later epochs sample other blocks than those of a run resumed there.
    prefetch = cfg.sampler.prefetch if cfg.sampler.num_workers == 0 else 0
    return cfg.sampler.model_copy(update={"shuffle": False, "drop_last": False, "num_workers": 0, "prefetch": prefetch})


def valid_loader(cfg: JobConfig, data: GraphData, model, device: torch.device,
                 hot_rows: HotRows | None) -> NodeBatchLoader | None:
    """The validation nodes' batches for ``train.validation: sampled`` (and ``auto``), else None."""
    ordered = _valid_sampler(cfg, data)
    if ordered is None:
        return None
    return NodeBatchLoader(data.graph, data.split["valid"], ordered, uses_graph=model.encoder.uses_graph,
                           base_seed=mix_seed(cfg.seed, VALID_SEED), device=device, hot_rows=hot_rows,
                           sparse=data.sparse_feat)


def _link_parts(cfg: JobConfig, data: LinkData, model, device: torch.device, dist: DistEnv):
    """(loader, task) of link prediction."""
    lc = cfg.link
    negatives = SeededNegatives(lc.num_negatives, cfg.seed, lc.negative_sampler == "global_uniform",
                                lc.true_negatives)
    loader = EdgeBatchLoader(data.graph, lp.train_seed_edges(data), cfg.sampler, negatives=negatives,
                             undirected=data.undirected, exclude_seed_edges=lc.exclude_seed_edges,
                             base_seed=cfg.seed, device=device, rank=dist.rank, world_size=dist.world_size)
    return loader, link_task(cfg, data)


def link_task(cfg: JobConfig, data: LinkData, exact=None, kind=lp.LinkPredictionTask) -> lp.LinkPredictionTask:
    """Link prediction's task (``kind``) for ``cfg.link`` (``exact``: its evaluation when not in this process)."""
    lc = cfg.link
    return kind(data, loss_kind=lc.loss, num_negatives=lc.num_negatives, margin=lc.margin,
                                 eval_batch_size=cfg.sampler.eval_batch_size,
                                 score_batch_size=lc.score_batch_size, seed=cfg.seed, exact=exact)


def _typed_node_parts(cfg: JobConfig, data: HeteroGraphData, model, device: torch.device, dist: DistEnv):
    """(loader, task) of node classification on a typed graph's target type."""
    loader = TypedNodeBatchLoader(data.graph, data.target, data.split["train"], cfg.sampler, base_seed=cfg.seed,
                                  device=device, rank=dist.rank, world_size=dist.world_size)
    ordered = _valid_sampler(cfg, data) if dist.is_main else None
    valid = None if ordered is None else TypedNodeBatchLoader(
        data.graph, data.target, data.split["valid"], ordered, base_seed=mix_seed(cfg.seed, VALID_SEED), device=device)
    task = TypedNodeClassificationTask(data, label_smoothing=cfg.train.label_smoothing,
                                       eval_batch_size=cfg.sampler.eval_batch_size, valid_loader=valid)
    return loader, task


def _typed_link_parts(cfg: JobConfig, data: HeteroLinkData, model, device: torch.device, dist: DistEnv):
    """(loader, task) of link prediction on one relation of a typed graph."""
    lc = cfg.link
    negatives = TypedNegatives(data.target, lc.num_negatives, cfg.seed, lc.true_negatives)
    loader = TypedEdgeBatchLoader(data.graph, data.target, train_relation_edges(data), cfg.sampler,
                                  negatives=negatives, exclude_seed_edges=lc.exclude_seed_edges, base_seed=cfg.seed,
                                  device=device, rank=dist.rank, world_size=dist.world_size)
    return loader, link_task(cfg, data, kind=TypedLinkPredictionTask)


# (typed dataset?, task) -> (loader, task) builder; :func:`largegraph.training.typed.is_typed` is the one question
PARTS = {(False, "node_classification"): _node_parts, (False, "link_prediction"): _link_parts,
         (True, "node_classification"): _typed_node_parts, (True, "link_prediction"): _typed_link_parts}
