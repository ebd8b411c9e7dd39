"""Link prediction on one relation of a typed graph: the same task, a typed model.

:class:`TypedLinkPredictor` has :class:`~largegraph.tasks.link_prediction.LinkPredictor`'s interface
(``forward(blocks, input_nodes, x, pos, neg)``, ``input_features``, ``encoder.inference``) over per-type
dicts, so :class:`~largegraph.tasks.link_prediction.LinkPredictionTask`'s loss and evaluation run
unchanged; :class:`TypedLinkPredictionTask` only ranks pairs of two types' embeddings.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from largegraph.data.hetero import HeteroLinkData
from largegraph.models import TypedEncoder, TypedInput
from largegraph.tasks.link_prediction import LinkPredictionTask

# Evaluation edges stored without negatives are ranked against this many fixed random destinations each.
EVAL_NEGATIVES = 100


class TypedLinkPredictor(nn.Module):
    """Input tables + typed encoder + edge scorer of ``relation``'s (source, destination) embeddings."""

    def __init__(self, tables: TypedInput, encoder: TypedEncoder, scorer: nn.Module, relation: tuple[str, str, str]):
        super().__init__()
        self.embedding = tables
        self.encoder = encoder
        self.scorer = scorer
        self.relation = relation

    def input_features(self, graph) -> dict[str, torch.Tensor]:
        """Every node's input rows per type (features, or the learned tables)."""
        return self.embedding.whole(graph)

    def forward(self, blocks: list, input_nodes: dict, x: dict, pos: tuple[torch.Tensor, torch.Tensor],
                neg: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of positive and negative pairs (indices into the blocks' output nodes of the
        relation's source and destination types); one forward, as DDP needs."""
        h = self.encoder(blocks, self.embedding(input_nodes, x))
        h_src, h_dst = h[self.relation[0]], h[self.relation[2]]
        return self.scorer(h_src[pos[0]], h_dst[pos[1]]), self.scorer(h_src[neg[0]], h_dst[neg[1]])


def train_relation_edges(data: HeteroLinkData) -> torch.Tensor:
    """Every training edge of the target relation (its reverse, if added, lives in another relation)."""
    return torch.arange(data.graph.num_edges(data.target))


@dataclass
class TypedLinkPredictionTask(LinkPredictionTask):
    """:class:`LinkPredictionTask` on the ``target`` relation of a :class:`HeteroLinkData` (OGB's
    ``source_target`` split; held-out edges without stored negatives get :data:`EVAL_NEGATIVES` fixed
    random destinations drawn from ``seed``)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        n_dst = self.data.graph.num_nodes(self.data.target[2])
        gen = torch.Generator().manual_seed(self.seed)
        self._split = {}
        for part, pairs in self.data.split.items():
            if part != "train" and "target_node_neg" not in pairs:
                shape = (len(pairs["source_node"]), EVAL_NEGATIVES)
                pairs = {**pairs, "target_node_neg": torch.randint(0, n_dst, shape, generator=gen)}
            self._split[part] = pairs

    @property
    def split_style(self) -> str:
        return "source_target"

    @property
    def eval_split(self) -> dict:
        return self._split

    def _scores(self, model, emb: dict[str, torch.Tensor], src: torch.Tensor, dst: torch.Tensor,
                device: torch.device) -> torch.Tensor:
        s_type, _, d_type = self.data.target
        return self.pair_scores(model, emb[s_type], emb[d_type], src, dst, device)
