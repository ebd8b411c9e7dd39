"""The batch records loaders yield and the trainer consumes.

Whatever delivers them (a local graph, worker processes, a DistGraph), a record says how many
training examples it holds (``size``), how far into the epoch's seed order all ranks are once it is
done (``offset``, what a checkpoint stores), and which seeds it trains on (``seed_ids``, for the
data-parallel check that ranks split an epoch without overlap).
"""
from __future__ import annotations

from dataclasses import dataclass

import dgl
import torch


@dataclass
class MiniBatch:
    """One node-classification step's data, already on the target device."""

    input_nodes: torch.Tensor
    seeds: torch.Tensor
    blocks: list
    x: torch.Tensor | None  # features of input_nodes; None for featureless graphs
    y: torch.Tensor
    offset: int = 0

    @property
    def size(self) -> int:
        return len(self.seeds)

    @property
    def seed_ids(self) -> torch.Tensor:
        return self.seeds


@dataclass
class EdgeMiniBatch:
    """One link-prediction step: positive and negative pairs over the blocks' output nodes."""

    input_nodes: torch.Tensor
    pair_graph: dgl.DGLGraph
    neg_graph: dgl.DGLGraph
    blocks: list
    x: torch.Tensor | None  # features of input_nodes; None for featureless graphs
    offset: int = 0

    @property
    def size(self) -> int:
        return self.pair_graph.num_edges()

    @property
    def seed_ids(self) -> torch.Tensor:
        """The training edges this batch predicts."""
        return self.pair_graph.edata[dgl.EID]
