"""Graph-free MLP encoder: a baseline that sees only each node's own features."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from largegraph.models.base import Encoder, EncoderSpec


class MLPEncoder(Encoder):
    """Stack of ``nn.Linear`` layers with the same between-layer treatment as the GNNs; its
    inference is a chunked pass over the feature rows (see :meth:`Encoder.inference`)."""

    uses_graph = False

    def make_layer(self, spec: EncoderSpec, i: int, d_in: int, d_out: int) -> nn.Module:
        return nn.Linear(d_in, d_out)

    def _layer(self, i: int, block: Any, h: torch.Tensor) -> torch.Tensor:
        return self.layers[i](h)

    def forward(self, blocks: list, x: torch.Tensor) -> torch.Tensor:
        """Compute embeddings; ``blocks`` is ignored (may be empty).

        Args:
            blocks: ignored.
            x: features of the output nodes.

        Returns:
            (len(x), out_dim) embeddings.
        """
        h = self.input_dropout(x)
        for i in range(self.num_layers):
            h = self._after(i, self._layer(i, None, h))
        return h
