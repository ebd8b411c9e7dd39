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
from largegraph.backends.distdgl.partfiles import MASKS
from largegraph.backends.distdgl.data import original_ids
from largegraph.training.distributed import DistEnv, all_sum, broadcast
from largegraph.core.errors import ConfigError
from largegraph.models import evaluating
from largegraph.tasks.link_prediction import LinkPredictionTask
from largegraph.tasks.node_classification import MAX_PROB_VALUES, NodeClassificationTask

_names = itertools.count()  # DistTensor names must be unique within the job


def _dist_tensor(g, shape: tuple[int, ...], dtype: torch.dtype, what: str):
    import dgl

    # Every trainer creates the same tensors in the same order, so the counter agrees across them.
    return dgl.distributed.DistTensor(shape, dtype, name=f"largegraph_{what}_{next(_names)}",
                                      part_policy=g.get_node_partition_policy("_N"))


def _rows_of(g, mine: torch.Tensor, batch_size: int):
    import dgl

    sampler = dgl.dataloading.MultiLayerFullNeighborSampler(1)
    return dgl.dataloading.DistNodeDataLoader(g, mine, sampler, batch_size=batch_size, shuffle=False,
                                              drop_last=False)


def _my_nodes(g) -> torch.Tensor:
    import dgl

    return dgl.distributed.node_split(torch.ones(g.num_nodes(), dtype=torch.bool), g.get_partition_book(),
                                      force_even=True)


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
def dist_inference(model, g, batch_size: int, device: torch.device, progress: bool = False):
    """Exact embeddings and class logits of every node, as ``DistTensor``s."""
    h = dist_embeddings(model, g, batch_size, device, progress)
    logits = _dist_tensor(g, (g.num_nodes(), model.head.out_features), next(model.parameters()).dtype, "logits")
    with evaluating(model):
        for chunk in torch.split(_my_nodes(g), batch_size):
            logits[chunk] = model.head(h[chunk].to(device)).cpu()
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
    """

    collective = True

    def __init__(self, data: GraphData, *, dist: DistEnv, part_config: str, embeddings: bool = False):
        if data.metric != "acc":
            raise ConfigError(f"distdgl evaluation counts accuracy; {data.name} is scored by {data.metric}")
        self.dist = dist
        self.part_config = part_config
        self.embeddings = embeddings

    def evaluate(self, task: NodeClassificationTask, model, device: torch.device, progress: bool = False,
                 outputs: bool = True) -> dict:
        """Scores of every split (on every rank) and, with ``outputs``, every node's predictions on
        rank 0. Without, the result is marked ``scores_only``: pulling every node's logits to one
        trainer is what a graph beyond a machine cannot afford at each epoch."""
        g = task.data.graph
        emb, logits = dist_inference(model, g, task.eval_batch_size, device, progress)
        counts = []
        for part in SPLITS:
            ids = task.data.split[part]  # this trainer's share
            pred = logits[ids].argmax(dim=1) if len(ids) else torch.empty(0, dtype=torch.long)
            counts += [float((pred == g.ndata["label"][ids].long()).sum()) if len(ids) else 0.0, float(len(ids))]
        totals = all_sum(counts, self.dist)
        result = {f"{part}_{task.metric}": totals[2 * k] / max(totals[2 * k + 1], 1.0)
                  for k, part in enumerate(SPLITS)}
        if not outputs:
            result["scores_only"] = True
        elif self.dist.is_main:
            result.update(self._outputs(g, emb, logits))
        g.barrier()  # the tensors stay readable until rank 0 has what it needs
        return result

    def _outputs(self, g, emb, logits) -> dict:
        """Every node's prediction, label, split and (when small) logits and embeddings, in dataset ids."""
        orig = original_ids(self.part_config)

        def in_dataset_order(t: torch.Tensor) -> torch.Tensor:
            out = torch.empty_like(t)
            out[orig] = t
            return out

        everyone = torch.arange(g.num_nodes())
        pulled = logits[everyone]
        out = {"pred": in_dataset_order(pulled.argmax(dim=1)),
               "label": in_dataset_order(g.ndata["label"][everyone].long()),
               "logits": in_dataset_order(pulled) if pulled.numel() <= MAX_PROB_VALUES else None}
        for part, mask in MASKS.items():
            out[f"{part}_idx"] = torch.sort(orig[g.ndata[mask][everyone].bool()]).values
        if self.embeddings:
            out["emb"] = in_dataset_order(emb[everyone])
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
        orig = original_ids(self.part_config)
        emb = torch.empty_like(result["emb"])
        emb[orig] = result["emb"]
        return emb

    def predictions(self, result: dict) -> dict:
        """What goes to predictions.pt: the node embeddings, in the dataset's node ids."""
        return {"emb": self.embeddings_of(result)}
