"""Graph-free MLP encoder: a baseline that sees only each node's own features."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from largegraph.models.base import Encoder, EncoderSpec
from largegraph.models.sparse import dropout_values, is_sparse, project


class MLPEncoder(Encoder):
    """Stack of ``nn.Linear`` layers with the same between-layer treatment as the GNNs; its
    inference is a chunked pass over the feature rows (see :meth:`Encoder.inference`)."""

    uses_graph = False

    def make_layer(self, spec: EncoderSpec, i: int, d_in: int, d_out: int) -> nn.Module:
        return nn.Linear(d_in, d_out)

    def _layer(self, i: int, block: Any, h: torch.Tensor) -> torch.Tensor:
        return self.layers[i](h)

    def check_sparse_input(self) -> None:
        """The first Linear is a sparse x dense product over the stored entries (no refusal)."""

    def sparse_layer(self, block: Any, x: torch.Tensor) -> torch.Tensor:
        return project(x, self.layers[0].weight) + self.layers[0].bias

    def forward(self, blocks: list, x: torch.Tensor) -> torch.Tensor:
        """Compute embeddings; ``blocks`` is ignored (may be empty).

        Args:
            blocks: ignored.
            x: features of the output nodes (dense, or sparse CSR rows).

        Returns:
            (len(x), out_dim) embeddings.
        """
        if is_sparse(x):
            h = self._after(0, self.sparse_layer(None, dropout_values(x, self.input_dropout)))
            first = 1
        else:
            h, first = self.input_dropout(x), 0
        for i in range(first, self.num_layers):
            h = self._after(i, self._layer(i, None, h))
        return h
