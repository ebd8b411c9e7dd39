"""Node classification: a linear head on any encoder, cross-entropy, and OGB's evaluator."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from largegraph.data.graph import SPLITS, GraphData
from largegraph.models import Encoder, evaluating
from largegraph.sampling import MiniBatch


MAX_PROB_VALUES = 100_000_000


class NodeClassifier(nn.Module):
    """An encoder followed by a linear class head."""

    def __init__(self, encoder: Encoder, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, num_classes)

    def forward(self, blocks: list, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(blocks, x))

    @torch.no_grad()
    def inference(self, graph, feat: torch.Tensor, batch_size: int, device: torch.device,
                  progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact logits and embeddings of every node (layer-wise, full neighbors).

        Returns:
            (logits (N, C), embeddings (N, out_dim)), both on CPU.
        """
        with evaluating(self):
            emb = self.encoder.inference(graph, feat, batch_size, device, progress=progress)
            logits = torch.cat([self.head(chunk.to(device)).cpu() for chunk in emb.split(batch_size)])
        return logits, emb


class NodeClassificationTask:
    """The loss and the evaluation of node classification, for the shared trainer.

    Args:
        data: a validated, prepared dataset.
        label_smoothing: of the cross-entropy loss.
        eval_batch_size: nodes per chunk of layer-wise inference.
    """

    name = "node_classification"
    metric = "acc"

    def __init__(self, data: GraphData, *, label_smoothing: float = 0.0, eval_batch_size: int = 8192):
        self.data = data
        self.label_smoothing = label_smoothing
        self.eval_batch_size = eval_batch_size
        from ogb.nodeproppred import Evaluator

        self.evaluator = Evaluator(data.evaluator_name)

    def loss(self, model: nn.Module, batch: MiniBatch) -> tuple[torch.Tensor, int]:
        """Returns (mean loss, number of correct predictions in the batch)."""
        logits = model(batch.blocks, batch.x)
        loss = F.cross_entropy(logits, batch.y, label_smoothing=self.label_smoothing)
        correct = int((logits.argmax(dim=1) == batch.y).sum())
        return loss, correct

    def _score(self, pred: torch.Tensor, idx: torch.Tensor) -> float:
        labels = self.data.graph.ndata["label"]
        result = self.evaluator.eval({"y_true": labels[idx].unsqueeze(1), "y_pred": pred[idx].unsqueeze(1)})
        return float(result[self.data.metric])

    def evaluate(self, model: NodeClassifier, device: torch.device, progress: bool = False) -> dict:
        """Score every split with OGB's evaluator on exact layer-wise inference.

        Returns:
            ``{"train_acc", "valid_acc", "test_acc", "pred", "logits", "emb"}``; the last three are
            tensors over all nodes.
        """
        g = self.data.graph
        logits, emb = model.inference(g, g.ndata["feat"], self.eval_batch_size, device, progress)
        pred = logits.argmax(dim=1)
        scores = {f"{part}_{self.metric}": self._score(pred, self.data.split[part]) for part in SPLITS}
        return {**scores, "pred": pred, "logits": logits, "emb": emb}

    def predictions(self, result: dict) -> dict:
        """What goes to predictions.pt: predicted class, the label, the split and, unless the table
        would exceed ~200 MB (ogbn-products has 2.4M nodes x 47 classes), class probabilities."""
        out = {
            "pred": result["pred"],
            "label": self.data.graph.ndata["label"],
            **{f"{part}_idx": self.data.split[part] for part in SPLITS},
        }
        if result["logits"].numel() <= MAX_PROB_VALUES:
            out["prob"] = torch.softmax(result["logits"], dim=1).to(torch.float16)
        return out
