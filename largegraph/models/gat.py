"""GAT encoder: multi-head attention, heads concatenated between layers and averaged at the end."""
from __future__ import annotations

from typing import Any

import dgl.nn
import torch
from torch import nn

from largegraph.config import ModelConfig
from largegraph.errors import ConfigError
from largegraph.models.base import Encoder


class GATEncoder(Encoder):
    """Stack of ``dgl.nn.GATConv`` layers with ``cfg.heads`` heads.

    Hidden layers give ``hidden // heads`` features per head, concatenated back to ``hidden`` so the
    between-layer norm sees the configured width. The last layer gives ``out_dim`` per head and
    averages them, as in the GAT paper's output layer.
    """

    def __init__(self, cfg: ModelConfig, in_dim: int, out_dim: int) -> None:
        """Args:
            cfg: the model section of the job config.
            in_dim: input feature width.
            out_dim: embedding width.

        Raises:
            ConfigError: ``model.hidden`` is not divisible by ``model.heads``.
        """
        if cfg.num_layers > 1 and cfg.hidden % cfg.heads != 0:
            raise ConfigError(
                f"model.hidden ({cfg.hidden}) must be divisible by model.heads ({cfg.heads}) for GAT")
        super().__init__(cfg, in_dim, out_dim)

    def make_layer(self, cfg: ModelConfig, i: int, d_in: int, d_out: int) -> nn.Module:
        last = i == cfg.num_layers - 1
        return dgl.nn.GATConv(d_in, d_out if last else d_out // cfg.heads, cfg.heads,
                              attn_drop=cfg.dropout, allow_zero_in_degree=True)

    def _layer(self, i: int, block: Any, h: torch.Tensor) -> torch.Tensor:
        h = self.layers[i](block, h)  # (nodes, heads, per-head width)
        return h.mean(1) if i == self.num_layers - 1 else h.flatten(1)
