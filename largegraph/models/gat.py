"""GAT encoder: multi-head attention, heads concatenated between layers and averaged at the end."""
from __future__ import annotations

from typing import Any

import dgl.nn
import torch
from torch import nn

from largegraph.core.errors import ConfigError
from largegraph.models.base import Encoder, EncoderSpec


class GATEncoder(Encoder):
    """Stack of ``dgl.nn.GATConv`` layers with ``spec.heads`` heads.

    Hidden layers give ``hidden // heads`` features per head, concatenated back to ``hidden`` so the
    between-layer norm sees the configured width. The last layer gives ``out_dim`` per head and
    averages them, as in the GAT paper's output layer.
    """

    def __init__(self, spec: EncoderSpec, in_dim: int, out_dim: int) -> None:
        """Args:
            spec: the encoder's shape.
            in_dim: input feature width.
            out_dim: embedding width.

        Raises:
            ConfigError: ``model.hidden`` is not divisible by ``model.heads``.
        """
        if spec.num_layers > 1 and spec.hidden % spec.heads != 0:
            raise ConfigError(
                f"model.hidden ({spec.hidden}) must be divisible by model.heads ({spec.heads}) for GAT")
        super().__init__(spec, in_dim, out_dim)

    def make_layer(self, spec: EncoderSpec, i: int, d_in: int, d_out: int) -> nn.Module:
        last = i == spec.num_layers - 1
        return dgl.nn.GATConv(d_in, d_out if last else d_out // spec.heads, spec.heads,
                              attn_drop=spec.dropout, allow_zero_in_degree=True)

    def _layer(self, i: int, block: Any, h: torch.Tensor) -> torch.Tensor:
        h = self.layers[i](block, h)  # (nodes, heads, per-head width)
        return h.mean(1) if i == self.num_layers - 1 else h.flatten(1)
