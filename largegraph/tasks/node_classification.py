"""Node classification: a linear head on any encoder, cross-entropy, and OGB's evaluator."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from largegraph.data.graph import SPLITS, GraphData
from largegraph.data.sparse import SparseFeatures
from largegraph.models import Encoder, evaluating
from largegraph.sampling import MiniBatch
from largegraph.tasks import ExactEvaluation


MAX_PROB_VALUES = 100_000_000


class NodeClassifier(nn.Module):
    """An encoder followed by a linear class head; with ``embedding`` (graphs without node features)
    the input layer is a learnable table of node vectors, trained with the rest and checkpointed."""

    def __init__(self, encoder: Encoder, num_classes: int, embedding: nn.Embedding | None = None):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, num_classes)
        self.embedding = embedding

    def forward(self, blocks: list, x: torch.Tensor | None, input_nodes: torch.Tensor | None = None) -> torch.Tensor:
        # The table lookup happens inside forward, where DistributedDataParallel sees its gradient.
        h = self.embedding(input_nodes) if self.embedding is not None else x
        return self.head(self.encoder(blocks, h))

    def input_features(self, graph, sparse: SparseFeatures | None = None) -> torch.Tensor | SparseFeatures:
        """What layer-wise inference starts from: the learned node table, the dataset's ``sparse``
        features (CSR rows gathered chunk by chunk) when it keeps them sparse, or the graph's features."""
        if self.embedding is not None:
            return self.embedding.weight.detach().cpu()
        return sparse if sparse is not None else graph.ndata["feat"]

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
        valid_loader: batches of the validation nodes; set, model selection scores them (sampled).
        exact: the exact evaluation when the graph is not in this process (DGL's engine), else
            layer-wise inference here.
    """

    name = "node_classification"
    metric = "acc"

    def __init__(self, data: GraphData, *, label_smoothing: float = 0.0, eval_batch_size: int = 8192,
                 valid_loader=None, exact: ExactEvaluation | None = None):
        self.data = data
        self.valid_loader = valid_loader
        self.label_smoothing = label_smoothing
        self.eval_batch_size = eval_batch_size
        self.exact = exact
        self.collective = exact is not None and exact.collective
        from ogb.nodeproppred import Evaluator

        self.evaluator = Evaluator(data.evaluator_name)

    def loss(self, model: nn.Module, batch: MiniBatch) -> tuple[torch.Tensor, int]:
        """Returns (mean loss, number of correct predictions in the batch)."""
        logits = model(batch.blocks, batch.x, batch.input_nodes)
        loss = F.cross_entropy(logits, batch.y, label_smoothing=self.label_smoothing)
        correct = int((logits.argmax(dim=1) == batch.y).sum())
        return loss, correct

    @torch.no_grad()
    def selection_scores(self, model: nn.Module, device: torch.device) -> dict | None:
        """The validation score for model selection from sampled neighbourhoods of the validation nodes,
        or None when this task selects by exact evaluation (no ``valid_loader``).

        The loader's batches are the same at every call (a fixed seed), so evaluations differ only by
        the weights; with every fanout -1 the score equals the exact one.
        """
        if self.valid_loader is None:
            return None
        correct = seen = 0
        with evaluating(model):
            for batch in self.valid_loader.epoch(0):
                logits = model(batch.blocks, batch.x, batch.input_nodes)
                correct += int((logits.argmax(dim=1) == batch.y).sum())
                seen += batch.size
        return {f"valid_{self.metric}": correct / max(seen, 1)}

    @property
    def labels(self) -> torch.Tensor:
        """Every classified node's label (-1: none)."""
        return self.data.graph.ndata["label"]

    def _score(self, pred: torch.Tensor, idx: torch.Tensor) -> float:
        labels = self.labels
        result = self.evaluator.eval({"y_true": labels[idx].unsqueeze(1), "y_pred": pred[idx].unsqueeze(1)})
        return float(result[self.data.metric])

    def evaluate(self, model: NodeClassifier, device: torch.device, progress: bool = False,
                 outputs: bool = True) -> dict:
        """Score every split with OGB's evaluator on exact layer-wise inference. Scoring computes
        every node's outputs here, so they are returned whatever ``outputs`` asks.

        Returns:
            ``{"train_acc", "valid_acc", "test_acc", "pred", "logits", "emb"}``; the last three are
            tensors over all nodes.
        """
        if self.exact is not None:
            return self.exact.evaluate(self, model, device, progress, outputs)
        g = self.data.graph
        logits, emb = model.inference(g, model.input_features(g, self.data.sparse_feat), self.eval_batch_size,
                                      device, progress)
        pred = logits.argmax(dim=1)
        scores = {f"{part}_{self.metric}": self._score(pred, self.data.split[part]) for part in SPLITS}
        return {**scores, "pred": pred, "logits": logits, "emb": emb}

    def embeddings_of(self, result: dict) -> torch.Tensor:
        """What goes to embeddings.pt: every node's embedding."""
        return result["emb"] if self.exact is None else self.exact.embeddings_of(result)

    def predictions(self, result: dict) -> dict:
        """What goes to predictions.pt: predicted class, the label, the split and, unless the table
        would exceed ~200 MB (ogbn-products has 2.4M nodes x 47 classes), class probabilities."""
        if self.exact is not None:
            return self.exact.predictions(result)
        out = {
            "pred": result["pred"],
            "label": self.labels,
            **{f"{part}_idx": self.data.split[part] for part in SPLITS},
        }
        if result["logits"].numel() <= MAX_PROB_VALUES:
            out["prob"] = torch.softmax(result["logits"], dim=1).to(torch.float16)
        return out
