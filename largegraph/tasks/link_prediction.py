"""Link prediction: any encoder, an edge scorer on node embeddings, BCE or margin loss, OGB evaluation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from largegraph.data.link import LinkData
from largegraph.core.errors import ConfigError
from largegraph.models import Encoder, evaluating
from largegraph.sampling import EdgeMiniBatch
from largegraph.tasks import ExactEvaluation


class DotPredictor(nn.Module):
    def forward(self, h_u: torch.Tensor, h_v: torch.Tensor) -> torch.Tensor:
        return (h_u * h_v).sum(-1)


class MLPPredictor(nn.Module):
    """Scores the element-wise product of two embeddings with a small MLP of ``layers`` linear layers,
    with ``dropout`` after each hidden layer and ``input_dropout`` on the product."""

    def __init__(self, dim: int, layers: int = 2, dropout: float = 0.0, input_dropout: float = 0.0):
        super().__init__()
        hidden: list[nn.Module] = [nn.Dropout(input_dropout)] if input_dropout else []
        for _ in range(layers - 1):
            hidden += [nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout)]
        self.net = nn.Sequential(*hidden, nn.Linear(dim, 1))

    def forward(self, h_u: torch.Tensor, h_v: torch.Tensor) -> torch.Tensor:
        return self.net(h_u * h_v).squeeze(-1)


def link_loss(kind: str, pos: torch.Tensor, neg: torch.Tensor, k: int, margin: float = 1.0) -> torch.Tensor:
    """The training loss of ``link.loss`` over positive scores and their ``k`` negatives each.

    ``neg`` holds positive ``i``'s negatives at ``[i*k, (i+1)*k)`` (the negative samplers' order).
    bce: logistic loss over all pairs; margin: hinge on the positive-negative gap; auc: squared
    distance of that gap from ``margin``, which weighs large violations more than the hinge does and
    also pulls over-separated pairs back, so all scores stay on one scale.
    """
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(
            torch.cat([pos, neg]), torch.cat([torch.ones_like(pos), torch.zeros_like(neg)]))
    gap = pos.repeat_interleave(k) - neg
    if kind == "margin":
        return F.relu(margin - gap).mean()
    if kind == "auc":
        return (margin - gap).square().mean()
    raise ValueError(f"unknown link loss {kind!r}")


# glibc hands out large blocks as fresh mmap'd pages and unmaps them on free, so a step that scores
# all its pairs at once page-faults its activations in again every time; pieces this size stay in
# the heap and are reused (measured with bench/link_epoch.py: see bench/README.md).
CPU_CHUNK_BYTES = 16 << 20


def cpu_chunk_pairs(width: int) -> int:
    """Pairs per scoring chunk on CPU, so that one (pairs, width) fp32 activation stays in the heap."""
    return max(1, CPU_CHUNK_BYTES // (width * 4))


class LinkPredictor(nn.Module):
    """Encoder + edge scorer; with ``embedding`` the input layer is a learnable table of node vectors
    (for graphs without node features, like ogbl-ddi) trained with the encoder and checkpointed."""

    def __init__(self, encoder: Encoder, scorer: nn.Module, embedding: nn.Embedding | None):
        super().__init__()
        self.encoder = encoder
        self.scorer = scorer
        self.embedding = embedding

    def input_features(self, graph) -> torch.Tensor:
        """What layer-wise inference starts from: the graph's features or the learned node table."""
        return self.embedding.weight.detach().cpu() if self.embedding is not None else graph.ndata["feat"]

    def node_input(self, input_nodes: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
        return self.embedding(input_nodes) if self.embedding is not None else x

    def forward(self, blocks: list, input_nodes: torch.Tensor, x: torch.Tensor | None,
                pos: tuple[torch.Tensor, torch.Tensor], neg: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of the positive and negative pairs (indices into the blocks' output nodes).

        One forward call covers embedding lookup, encoder and scorer, so DistributedDataParallel,
        which hooks ``forward``, sees every parameter the loss depends on.
        """
        h = self.encoder(blocks, self.node_input(input_nodes, x))
        return self.score(h, *pos), self.score(h, *neg)

    def score(self, h: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        """Scores of the pairs ``(src[i], dst[i])`` of rows of ``h``."""
        chunk = cpu_chunk_pairs(h.shape[1])
        if h.device.type != "cpu" or len(src) <= chunk:
            return self.scorer(h[src], h[dst])
        return torch.cat([self.scorer(h[s], h[d]) for s, d in zip(src.split(chunk), dst.split(chunk))])


def uses_embedding(mode: str, data: LinkData) -> bool:
    """Whether the model's input is a learnable node table (``link.embedding``: auto, always, never)."""
    has_feat = "feat" in data.graph.ndata
    if mode == "never" and not has_feat:
        raise ConfigError(f"{data.name} has no node features; set link.embedding to auto or always")
    return mode == "always" or (mode == "auto" and not has_feat)


def make_embedding(rows: int, dim: int) -> nn.Embedding:
    """A learnable input table for featureless graphs (Xavier-initialised)."""
    embedding = nn.Embedding(rows, dim)
    nn.init.xavier_uniform_(embedding.weight)
    return embedding


def build_link_model(encoder: Encoder, embedding: nn.Embedding | None, predictor: str, predictor_layers: int = 2,
                     predictor_dropout: float = 0.0, predictor_input_dropout: float = 0.0) -> LinkPredictor:
    """Encoder + scorer (``dot`` or ``mlp``) over ``encoder``'s embeddings, with ``embedding`` as the
    input layer when given."""
    return LinkPredictor(encoder, make_scorer(encoder.out_dim, predictor, predictor_layers, predictor_dropout,
                                             predictor_input_dropout), embedding)


def make_scorer(dim: int, predictor: str, layers: int = 2, dropout: float = 0.0,
                input_dropout: float = 0.0) -> nn.Module:
    """The edge scorer ``link.predictor`` names (``dot`` or ``mlp``) over embeddings of width ``dim``."""
    return DotPredictor() if predictor == "dot" else MLPPredictor(dim, layers, dropout, input_dropout)


def train_seed_edges(data: LinkData) -> torch.Tensor:
    """One edge id per training edge: with reverse edges interleaved (undirected data), the even ids."""
    n = data.graph.num_edges()
    return torch.arange(0, n, 2) if is_undirected(data) else torch.arange(n)


def is_undirected(data: LinkData) -> bool:
    return data.undirected


@dataclass
class LinkPredictionTask:
    """The loss and the evaluation of link prediction, for the shared trainer.

    Args:
        data: a loaded link dataset (message-passing graph = training edges only).
        loss_kind: ``link.loss`` (see :func:`link_loss`), with ``margin``.
        num_negatives: negatives per positive in a training batch.
        eval_batch_size: nodes per chunk of layer-wise inference.
        score_batch_size: pairs per chunk when scoring evaluation edges.
        seed: picks the fixed subset of training edges that "train" metrics rank.
        exact: the exact evaluation when the graph is not in this process (DGL's engine), else
            layer-wise inference here.
    """

    name: ClassVar[str] = "link_prediction"

    data: LinkData
    loss_kind: str = "bce"
    num_negatives: int = 1
    margin: float = 1.0
    eval_batch_size: int = 8192
    score_batch_size: int = 65536
    seed: int = 0
    exact: ExactEvaluation | None = None

    def __post_init__(self) -> None:
        from ogb.linkproppred import Evaluator

        self.metric = self.data.metric
        self.evaluator = Evaluator(self.data.evaluator_name)
        self.collective = self.exact is not None and self.exact.collective

    def loss(self, model: LinkPredictor, batch: EdgeMiniBatch) -> tuple[torch.Tensor, int]:
        """Returns (loss, number of positives scored above zero and negatives below)."""
        pos, neg = model(batch.blocks, batch.input_nodes, batch.x, batch.pair_graph.edges(), batch.neg_graph.edges())
        loss = link_loss(self.loss_kind, pos, neg, self.num_negatives, self.margin)
        correct = int((pos > 0).sum()) + int((neg < 0).sum())
        # Accuracy over positives and negatives, expressed per positive so the trainer's
        # correct/size ratio stays in [0, 1].
        return loss, round(correct * len(pos) / (len(pos) + len(neg)))

    # --- evaluation ------------------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, model: LinkPredictor, device: torch.device) -> torch.Tensor:
        """Exact full-neighbor embeddings of every node (layer-wise inference, which runs the encoder
        in eval mode and restores its mode)."""
        g = self.data.graph
        return model.encoder.inference(g, model.input_features(g), self.eval_batch_size, device)

    def _scores(self, model: LinkPredictor, emb: torch.Tensor, src: torch.Tensor, dst: torch.Tensor,
                device: torch.device) -> torch.Tensor:
        return self.pair_scores(model, emb, emb, src, dst, device)

    def pair_scores(self, model: nn.Module, h_src: torch.Tensor, h_dst: torch.Tensor, src: torch.Tensor,
                    dst: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Scores of the pairs ``(h_src[src[i]], h_dst[dst[i]])``, in chunks of ``score_batch_size``."""
        chunk = self.score_batch_size
        if device.type == "cpu":
            chunk = min(chunk, cpu_chunk_pairs(h_src.shape[1]))
        out = []
        for s, d in zip(src.split(chunk), dst.split(chunk)):
            out.append(model.scorer(h_src[s].to(device), h_dst[d].to(device)).cpu())
        return torch.cat(out) if out else torch.empty(0)

    @property
    def split_style(self) -> str:
        """How the split holds its pairs (``edge`` or ``source_target``)."""
        return self.data.split_style

    @property
    def eval_split(self) -> dict:
        """The pairs (and negatives) each split is scored on."""
        return self.data.split

    def score_split(self, model, emb: torch.Tensor, part: str, device: torch.device) -> float | None:
        """``part``'s score of the pairs ``emb`` ranks (None for citation2-style training edges)."""
        split = self.eval_split
        if self.split_style == "source_target":
            if part == "train":
                return None  # citation2-style training edges carry no negatives to rank against
            p = split[part]
            src, tgt, neg = p["source_node"], p["target_node"], p["target_node_neg"]
            pos = self._scores(model, emb, src, tgt, device)
            k = neg.shape[1]
            negs = self._scores(model, emb, src.repeat_interleave(k), neg.reshape(-1), device).view(-1, k)
            result = self.evaluator.eval({"y_pred_pos": pos, "y_pred_neg": negs})
            return float(result["mrr_list"].mean())
        if part == "train":
            # As OGB's examples do: a fixed random subset of training edges, as many as valid has,
            # ranked against the validation negatives.
            edges = split["train"]["edge"]
            gen = torch.Generator().manual_seed(self.seed)
            edges = edges[torch.randperm(len(edges), generator=gen)[:len(split["valid"]["edge"])]]
            neg_edges = split["valid"]["edge_neg"]
        else:
            edges, neg_edges = split[part]["edge"], split[part]["edge_neg"]
        pos = self._scores(model, emb, edges[:, 0], edges[:, 1], device)
        neg = self._scores(model, emb, neg_edges[:, 0], neg_edges[:, 1], device)
        return float(self.evaluator.eval({"y_pred_pos": pos, "y_pred_neg": neg})[self.metric])

    def evaluate(self, model: LinkPredictor, device: torch.device, progress: bool = False,
                 outputs: bool = True) -> dict:
        """Score train (subset), valid and test edges with OGB's evaluator. Ranking needs every
        node's embedding, so it is returned whatever ``outputs`` asks.

        Returns:
            ``{"train_<metric>", "valid_<metric>", "test_<metric>", "emb"}`` (train may be None).
        """
        if self.exact is not None:
            return self.exact.evaluate(self, model, device, progress, outputs)
        with evaluating(model):  # the scorer too: an MLP scorer's dropout must be off while ranking
            emb = self.embed(model, device)
            scores = {f"{part}_{self.metric}": self.score_split(model, emb, part, device)
                      for part in ("train", "valid", "test")}
        return {**scores, "emb": emb}

    def embeddings_of(self, result: dict) -> torch.Tensor:
        """What goes to embeddings.pt: every node's embedding."""
        return result["emb"] if self.exact is None else self.exact.embeddings_of(result)

    def selection_scores(self, model: nn.Module, device: torch.device) -> None:
        """None: link prediction selects by its exact evaluation."""
        return None

    def predictions(self, result: dict) -> dict:
        """What goes to predictions.pt: the node embeddings the edge scores come from."""
        return {"emb": self.embeddings_of(result)}
