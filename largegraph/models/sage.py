"""GraphSAGE encoder (mean / pool / gcn aggregators)."""
from __future__ import annotations

from typing import Any

import dgl.nn
import torch

from largegraph.config import ModelConfig
from largegraph.models.base import Encoder


class SAGEEncoder(Encoder):
    """Stack of ``dgl.nn.SAGEConv`` layers with ``cfg.aggregator``."""

    def __init__(self, cfg: ModelConfig, in_dim: int, out_dim: int) -> None:
        """Args:
            cfg: the model section of the job config.
            in_dim: input feature width.
            out_dim: embedding width.
        """
        super().__init__(cfg, in_dim, out_dim)
        for d_in, d_out in self.layer_dims():
            self.layers.append(dgl.nn.SAGEConv(d_in, d_out, aggregator_type=cfg.aggregator))

    def _layer(self, i: int, block: Any, h: torch.Tensor) -> torch.Tensor:
        return self.layers[i](block, h)
