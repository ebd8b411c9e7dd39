"""Node classification on one node type of a typed graph: the same task, a typed model.

:class:`TypedNodeClassifier` has :class:`~largegraph.tasks.node_classification.NodeClassifier`'s
interface (``forward(blocks, x, input_nodes)``, ``input_features``, ``inference``) over per-type dicts,
so :class:`~largegraph.tasks.node_classification.NodeClassificationTask`'s loss, sampled validation and
exact evaluation run unchanged; :class:`TypedNodeClassificationTask` only says where the labels are.
"""
from __future__ import annotations

import torch
from torch import nn

from largegraph.data.hetero import HeteroGraphData
from largegraph.models import TypedEncoder, TypedInput, evaluating
from largegraph.tasks.node_classification import NodeClassificationTask


class TypedNodeClassifier(nn.Module):
    """Input tables + typed encoder + a linear class head on the ``target`` type's embeddings."""

    def __init__(self, tables: TypedInput, encoder: TypedEncoder, num_classes: int, target: str):
        super().__init__()
        self.embedding = tables
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, num_classes)
        self.target = target

    def forward(self, blocks: list, x: dict[str, torch.Tensor], input_nodes: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits of the ``target`` nodes of ``blocks[-1]``."""
        return self.head(self.encoder(blocks, self.embedding(input_nodes, x))[self.target])

    def input_features(self, graph, sparse=None) -> dict[str, torch.Tensor]:
        """Every node's input rows per type (features, or the learned tables)."""
        return self.embedding.whole(graph)

    @torch.no_grad()
    def inference(self, graph, feat: dict[str, torch.Tensor], batch_size: int, device: torch.device,
                  progress: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Exact logits of every ``target`` node and embeddings of every node, per type (CPU)."""
        with evaluating(self):
            emb = self.encoder.inference(graph, feat, batch_size, device, progress=progress)
            logits = torch.cat([self.head(chunk.to(device)).cpu() for chunk in emb[self.target].split(batch_size)])
        return logits, emb


class TypedNodeClassificationTask(NodeClassificationTask):
    """:class:`NodeClassificationTask` on the ``target`` type of a :class:`HeteroGraphData`."""

    data: HeteroGraphData

    @property
    def labels(self) -> torch.Tensor:
        return self.data.graph.nodes[self.data.target].data["label"]
