"""GCN encoder with mean (random-walk) normalisation."""
from __future__ import annotations

from typing import Any

import dgl.nn
import torch

from largegraph.config import ModelConfig
from largegraph.models.base import Encoder


class GCNEncoder(Encoder):
    """Stack of ``dgl.nn.GraphConv`` layers with ``norm="right"`` (divide by in-degree).

    Symmetric normalisation (``norm="both"``) is deliberately not used: it scales each message by
    the source's out-degree, and on a sampled block or an inference chunk that degree counts only
    the block's edges, so mini-batch training and layer-wise inference would disagree with a
    full-graph forward. The in-degree of a destination node is complete in a full-neighbour block,
    so ``"right"`` makes layer-wise inference exact.
    """

    def __init__(self, cfg: ModelConfig, in_dim: int, out_dim: int) -> None:
        """Args:
            cfg: the model section of the job config.
            in_dim: input feature width.
            out_dim: embedding width.
        """
        super().__init__(cfg, in_dim, out_dim)
        for d_in, d_out in self.layer_dims():
            # Zero in-degree nodes (isolated, or unsampled) just get the bias instead of raising.
            self.layers.append(dgl.nn.GraphConv(d_in, d_out, norm="right", allow_zero_in_degree=True))

    def _layer(self, i: int, block: Any, h: torch.Tensor) -> torch.Tensor:
        return self.layers[i](block, h)
