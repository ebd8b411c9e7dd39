"""The distdgl backend: a trainer of DGL's engine, whose graph servers hold the partitions.

The dataset is this trainer's view of a ``DistGraph`` (:mod:`~largegraph.backends.distdgl.data`), the
loaders sample through it (:mod:`~largegraph.backends.distdgl.loaders`), and the tasks are the local
ones with the exact evaluation all trainers share (:mod:`~largegraph.backends.distdgl.evaluation`)
handed to them when they are built. :func:`trainer_session` is a trainer's membership of the engine,
which the entry point holds around the run.
"""
from __future__ import annotations

import contextlib
import json
import logging
from typing import Callable, Iterator

import torch

from largegraph.backends.distdgl.data import DistLinkData, DistNodeData, DistTypedNodeData, load_dist_data
from largegraph.backends.distdgl.evaluation import DistLinkEvaluation, DistNodeEvaluation
from largegraph.backends.distdgl.loaders import DistEdgeLoader, DistNodeLoader, DistTypedNodeLoader
from largegraph.backends.local import link_task
from largegraph.config import JobConfig
from largegraph.core import fsutil
from largegraph.core.errors import ConfigError, Stopped
from largegraph.core.signals import StopRequest
from largegraph.tasks.node_classification import NodeClassificationTask
from largegraph.tasks.typed_node import TypedNodeClassificationTask
from largegraph.training import distributed
from largegraph.training.distributed import DistEnv
from largegraph.training.rundir import RunDir
from largegraph.training.typed import is_typed

log = logging.getLogger(__name__)


class DistDGLBackend:
    """Dataset, loader and task of a trainer of DGL's engine (``distributed.mode: distdgl``)."""

    def load_data(self, cfg: JobConfig) -> DistNodeData | DistLinkData | DistTypedNodeData:
        """This trainer's view of the partitioned dataset (after it joined the engine)."""
        return load_dist_data(cfg)

    def load_on_every_rank(self, cfg: JobConfig, dist: DistEnv, before_others: Callable[[], None]):
        """Every trainer joins the ``DistGraph`` at once (its set-up talks to all servers)."""
        data = self.load_data(cfg)
        distributed.on_main(before_others, dist, share=False)
        return data

    def build(self, cfg: JobConfig, data, model: torch.nn.Module, device: torch.device, dist: DistEnv):
        """(loader, task) of ``cfg.task`` for this trainer."""
        part_config = cfg.distributed.part_config
        if cfg.task != "link_prediction":
            return _node_parts(cfg, data, device, dist)
        lc = cfg.link
        if cfg.sampler.full_graph:
            raise ConfigError("sampler.full_graph runs every step over the whole graph in one process; with "
                              "distributed.mode: distdgl sample blocks (sampler.full_graph: false)")
        loader = DistEdgeLoader(data.graph, data.train_seeds, cfg.sampler, num_negatives=lc.num_negatives,
                                reverse_eids=data.reverse_eids if lc.exclude_seed_edges else None,
                                exclude_self=lc.exclude_seed_edges and not data.undirected,
                                base_seed=cfg.seed, device=device, dist=dist)
        return loader, link_task(cfg, data, exact=DistLinkEvaluation(dist=dist, part_config=part_config))

    def report(self, data, run: RunDir, dist: DistEnv) -> None:
        """Which training nodes each trainer walks (``distdgl/trainers.json``, and one line each)."""
        shares = distributed.gather(data.share, dist)
        if not dist.is_main:
            return
        for rank, share in enumerate(shares):
            count, what = (share["train_nodes"], "nodes") if "train_nodes" in share else (share["train_edges"], "edges")
            log.info(f"distdgl trainer {rank}: {count} training {what}, {share['own_partition']} of them in its "
                     f"own partition {share['partition']}")
        (run.path / "distdgl").mkdir(exist_ok=True)
        fsutil.atomic_write_text(run.path / "distdgl" / "trainers.json", json.dumps(shares, indent=1), durable=False)


def _node_parts(cfg: JobConfig, data, device: torch.device, dist: DistEnv):
    """(loader, task) of node classification, on a typed graph's target type when it has types."""
    typed = is_typed(data)
    if typed:
        loader = DistTypedNodeLoader(data.graph, data.target, data.split["train"], cfg.sampler, base_seed=cfg.seed,
                                     device=device, dist=dist)
    else:
        loader = DistNodeLoader(data.graph, data.split["train"], cfg.sampler, base_seed=cfg.seed, device=device,
                                dist=dist)
    exact = DistNodeEvaluation(data, dist=dist, part_config=cfg.distributed.part_config,
                               embeddings=cfg.train.export_embeddings, target=data.target if typed else None)
    kind = TypedNodeClassificationTask if typed else NodeClassificationTask
    return loader, kind(data, label_smoothing=cfg.train.label_smoothing, eval_batch_size=cfg.sampler.eval_batch_size,
                        exact=exact)


@contextlib.contextmanager
def trainer_session(stop: StopRequest) -> Iterator[None]:
    """A trainer's membership of DGL's engine around its run: joined before torch.distributed (as DGL
    requires), left when the run ends or stops (every trainer stops at the same step, so all of them
    leave together); the last to leave shuts the servers down."""
    from largegraph.backends.distdgl import roles

    roles.join()
    stop.reclaim()  # DGL's RPC installed its own SIGTERM handler, which exits
    try:
        yield
    except Stopped:
        roles.leave()
        raise
    roles.leave()


def run_as_role(train: Callable[[StopRequest], str]) -> str:
    """Run ``train`` as this process's part in a distdgl job says (the launcher sets the role): a graph
    server serves its partition and never returns; a trainer trains inside :func:`trainer_session`;
    a process with no role (a local job, a torchrun worker) just trains.

    SIGTERM is a request to checkpoint and stop from here on, however early it comes.
    """
    from largegraph.backends.distdgl import roles

    with StopRequest() as stop:
        if roles.role() == roles.SERVER:
            roles.serve()  # never returns
        if not roles.is_trainer():
            return train(stop)
        with trainer_session(stop):
            return train(stop)
