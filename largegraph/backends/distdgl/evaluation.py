"""Exact evaluation on DGL's engine: layer-wise inference shared by all trainers.

As in DGL's distributed example, every trainer computes each layer for its share of all nodes
(``node_split`` of every node, so mostly nodes of its own partition) over full neighbourhoods and
writes the rows into a ``DistTensor``; after a barrier the next layer reads them from there. No
trainer ever holds a whole layer. Scores are counted per trainer on its share of each split and
summed. Only for an evaluation the run may end with does rank 0 pull the predictions (and, when
small enough, class probabilities) of every node, in the dataset's own node ids, for
``predictions.pt``.
"""
from __future__ import annotations

import itertools

import torch
from tqdm.auto import tqdm

from largegraph.data.graph import SPLITS, GraphData
from largegraph.backends.distdgl.partfiles import DEFAULT_NTYPE, MASKS
from largegraph.backends.distdgl.data import original_ids
from largegraph.backends.distdgl.loaders import every_relation_sampler, typed_rows
from largegraph.training.distributed import DistEnv, all_sum, broadcast
from largegraph.core.errors import ConfigError
from largegraph.models import evaluating
from largegraph.tasks.link_prediction import LinkPredictionTask
from largegraph.tasks.node_classification import MAX_PROB_VALUES, NodeClassificationTask

_names = itertools.count()  # DistTensor names must be unique within the job


def _dist_tensor(g, shape: tuple[int, ...], dtype: torch.dtype, what: str, ntype: str = DEFAULT_NTYPE):
    import dgl

    # Every trainer creates the same tensors in the same order, so the counter agrees across them.
    return dgl.distributed.DistTensor(shape, dtype, name=f"largegraph_{what}_{next(_names)}",
                                      part_policy=g.get_node_partition_policy(ntype))


def _rows_of(g, mine: torch.Tensor | dict[str, torch.Tensor], batch_size: int):
    import dgl

    sampler = every_relation_sampler([-1]) if isinstance(mine, dict) else dgl.dataloading.MultiLayerFullNeighborSampler(1)
    return dgl.dataloading.DistNodeDataLoader(g, mine, sampler, batch_size=batch_size, shuffle=False,
                                              drop_last=False)


def _my_nodes(g, ntype: str = DEFAULT_NTYPE) -> torch.Tensor:
    """This trainer's share of the ``ntype`` nodes (mostly its own partition's)."""
    import dgl

    return dgl.distributed.node_split(torch.ones(g.num_nodes(ntype), dtype=torch.bool), g.get_partition_book(),
                                      ntype=ntype, force_even=True)


@torch.no_grad()
def dist_embeddings(model, g, batch_size: int, device: torch.device, progress: bool = False):
    """Exact embeddings of every node (``model.encoder``'s output), layer by layer, as a ``DistTensor``."""
    encoder = model.encoder
    mine = _my_nodes(g)
    h = g.ndata["feat"] if model.embedding is None else None
    dtype = next(model.parameters()).dtype
    with evaluating(model):
        for i in range(encoder.num_layers):
            width = encoder.out_dim if i == encoder.num_layers - 1 else encoder.hidden_dim
            out = _dist_tensor(g, (g.num_nodes(), width), dtype, f"layer{i}")
            for input_nodes, output_nodes, blocks in tqdm(_rows_of(g, mine, batch_size), disable=not progress,
                                                          desc=f"inference layer {i + 1}/{encoder.num_layers}"):
                x = (model.embedding(input_nodes.to(device)) if h is None else h[input_nodes].to(device)).to(dtype)
                if i == 0:
                    x = encoder.input_dropout(x)
                out[output_nodes] = encoder._after(i, encoder._layer(i, blocks[0].to(device), x)).cpu()
            g.barrier()  # the whole layer is written before anyone reads it
            h = out
    return h


@torch.no_grad()
def dist_typed_embeddings(model, g, batch_size: int, device: torch.device, progress: bool = False) -> dict:
    """Exact embeddings of every node of every type (a typed ``model.encoder``'s output), layer by
    layer as :func:`dist_embeddings`, as one ``DistTensor`` per type."""
    encoder, tables = model.encoder, model.embedding
    mine = {t: ids for t in g.ntypes if len(ids := _my_nodes(g, t))}
    h = {t: g.nodes[t].data["feat"] for t in g.ntypes if t not in tables.tables}
    dtype = next(model.parameters()).dtype
    with evaluating(model):
        for i in range(encoder.num_layers):
            width = encoder.out_dim if i == encoder.num_layers - 1 else encoder.hidden_dim
            out = {t: _dist_tensor(g, (g.num_nodes(t), width), dtype, f"layer{i}", t) for t in g.ntypes}
            for input_nodes, output_nodes, blocks in tqdm(_rows_of(g, mine, batch_size), disable=not progress,
                                                          desc=f"inference layer {i + 1}/{encoder.num_layers}"):
                x = typed_rows(h, input_nodes, device)
                if i == 0:  # featureless types' rows are the model's tables
                    x = tables({t: ids.to(device) for t, ids in input_nodes.items()}, x)
                    x = {t: encoder.input_dropout(v) for t, v in x.items()}
                y = encoder._after(i, encoder.layers[i](blocks[0].to(device), {t: v.to(dtype) for t, v in x.items()}))
                for t, ids in output_nodes.items():
                    if len(ids):
                        out[t][ids] = y[t].cpu()
            g.barrier()  # the whole layer is written before anyone reads it
            h = out
    return h


@torch.no_grad()
def dist_inference(model, g, batch_size: int, device: torch.device, progress: bool = False,
                   target: str | None = None):
    """Exact embeddings (of every node type when ``target`` names the classified type of a typed
    graph) and the class logits of every classified node, as ``DistTensor``s."""
    if target is None:
        h = classified = dist_embeddings(model, g, batch_size, device, progress)
    else:
        h = dist_typed_embeddings(model, g, batch_size, device, progress)
        classified = h[target]
    ntype = target or DEFAULT_NTYPE
    logits = _dist_tensor(g, (g.num_nodes(ntype), model.head.out_features), next(model.parameters()).dtype,
                          "logits", ntype)
    with evaluating(model):
        for chunk in torch.split(_my_nodes(g, ntype), batch_size):
            logits[chunk] = model.head(classified[chunk].to(device)).cpu()
    g.barrier()
    return h, logits


class DistNodeEvaluation:
    """Node classification's exact evaluation on a ``DistGraph``, shared by every trainer.

    Handed to :class:`~largegraph.tasks.node_classification.NodeClassificationTask` (whose loss is
    the one trained); every trainer runs :meth:`evaluate` together.

    Args:
        data: this trainer's view of the partitioned dataset.
        dist: this trainer's place among all trainers.
        part_config: the partitions (their node ids map back to the dataset's).
        embeddings: also pull every node's embedding for the final outputs (``train.export_embeddings``).
        target: the classified node type of a typed graph (its encoder typed), None for an untyped one.
    """

    collective = True

    def __init__(self, data: GraphData, *, dist: DistEnv, part_config: str, embeddings: bool = False,
                 target: str | None = None):
        if data.metric != "acc":
            raise ConfigError(f"distdgl evaluation counts accuracy; {data.name} is scored by {data.metric}")
        self.dist = dist
        self.part_config = part_config
        self.embeddings = embeddings
        self.target = target

    def evaluate(self, task: NodeClassificationTask, model, device: torch.device, progress: bool = False,
                 outputs: bool = True) -> dict:
        """Scores of every split (on every rank) and, with ``outputs``, every node's predictions on
        rank 0. Without, the result is marked ``scores_only``: pulling every node's logits to one
        trainer is what a graph beyond a machine cannot afford at each epoch."""
        g = task.data.graph
        emb, logits = dist_inference(model, g, task.eval_batch_size, device, progress, self.target)
        labels = self._nodes(g)["label"]
        counts = []
        for part in SPLITS:
            ids = task.data.split[part]  # this trainer's share
            pred = logits[ids].argmax(dim=1) if len(ids) else torch.empty(0, dtype=torch.long)
            counts += [float((pred == labels[ids].long()).sum()) if len(ids) else 0.0, float(len(ids))]
        totals = all_sum(counts, self.dist)
        result = {f"{part}_{task.metric}": totals[2 * k] / max(totals[2 * k + 1], 1.0)
                  for k, part in enumerate(SPLITS)}
        if not outputs:
            result["scores_only"] = True
        elif self.dist.is_main:
            result.update(self._outputs(g, emb, logits))
        g.barrier()  # the tensors stay readable until rank 0 has what it needs
        return result

    def _nodes(self, g):
        """The classified nodes' data (labels and split masks): every node's, or the target type's."""
        return g.ndata if self.target is None else g.nodes[self.target].data

    def _outputs(self, g, emb, logits) -> dict:
        """Every classified node's prediction, label, split and (when small) logits, and every node's
        embedding (per type for a typed graph), in dataset ids."""
        origs = original_ids(self.part_config)
        orig = origs if self.target is None else origs[self.target]
        nodes = self._nodes(g)
        everyone = torch.arange(logits.shape[0])
        pulled = logits[everyone]
        out = {"pred": _in_dataset_order(pulled.argmax(dim=1), orig),
               "label": _in_dataset_order(nodes["label"][everyone].long(), orig),
               "logits": _in_dataset_order(pulled, orig) if pulled.numel() <= MAX_PROB_VALUES else None}
        for part, mask in MASKS.items():
            out[f"{part}_idx"] = torch.sort(orig[nodes[mask][everyone].bool()]).values
        if self.embeddings:
            out["emb"] = (_in_dataset_order(emb[everyone], orig) if self.target is None else
                          {t: _in_dataset_order(e[torch.arange(e.shape[0])], origs[t]) for t, e in emb.items()})
        return out

    def embeddings_of(self, result: dict) -> torch.Tensor:
        """What goes to embeddings.pt: every node's embedding, in dataset node ids."""
        return result["emb"]

    def predictions(self, result: dict) -> dict:
        """What goes to predictions.pt (dataset node ids, as a single-machine run writes it)."""
        out = {"pred": result["pred"], "label": result["label"],
               **{f"{part}_idx": result[f"{part}_idx"] for part in SPLITS}}
        if result.get("logits") is not None:
            out["prob"] = torch.softmax(result["logits"], dim=1).to(torch.float16)
        return out


def _in_dataset_order(rows: torch.Tensor, orig: torch.Tensor) -> torch.Tensor:
    """``rows`` (in partitioned ids) in the dataset's ids (``orig``: the dataset id of each partitioned id)."""
    out = torch.empty_like(rows)
    out[orig] = rows
    return out


class DistLinkEvaluation:
    """Link prediction's exact evaluation on a ``DistGraph``, handed to
    :class:`~largegraph.tasks.link_prediction.LinkPredictionTask`.

    Embeddings come from :func:`dist_embeddings` (every trainer computes its share); rank 0 then
    ranks the split's pairs exactly as a single-machine run does, and hands the scores to the others.
    """

    collective = True

    def __init__(self, *, dist: DistEnv, part_config: str):
        self.dist = dist
        self.part_config = part_config

    def evaluate(self, task: LinkPredictionTask, model, device: torch.device, progress: bool = False,
                 outputs: bool = True) -> dict:
        """Scores of every split on every rank; ``emb`` on rank 0, which ranks with every embedding
        whatever ``outputs`` asks."""
        g = task.data.graph
        with evaluating(model):
            emb_dt = dist_embeddings(model, g, task.eval_batch_size, device, progress)
            emb = None
            if self.dist.is_main:
                emb = emb_dt[torch.arange(g.num_nodes())]
                scores = {f"{part}_{task.metric}": task.score_split(model, emb, part, device)
                          for part in ("train", "valid", "test")}
            g.barrier()  # rank 0 has read every row before the tensor may go
        scores = broadcast(scores if self.dist.is_main else None, self.dist)
        return {**scores, "emb": emb}

    def embeddings_of(self, result: dict) -> torch.Tensor:
        """The node embeddings, in the dataset's node ids (``emb`` is in the partitions' ids)."""
        return _in_dataset_order(result["emb"], original_ids(self.part_config))

    def predictions(self, result: dict) -> dict:
        """What goes to predictions.pt: the node embeddings, in the dataset's node ids."""
        return {"emb": self.embeddings_of(result)}
