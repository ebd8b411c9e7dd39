"""Graph-free MLP encoder: a baseline that sees only each node's own features."""
from __future__ import annotations

from typing import Any

import dgl
import torch
from torch import nn
from tqdm.auto import tqdm

from largegraph.models.base import Encoder, EncoderSpec, evaluating


class MLPEncoder(Encoder):
    """Stack of ``nn.Linear`` layers with the same between-layer treatment as the GNNs."""

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

    @torch.no_grad()
    def inference(self, g: dgl.DGLGraph, feat: torch.Tensor, batch_size: int,
                  device: torch.device | str = "cpu", num_workers: int = 0,
                  progress: bool = False) -> torch.Tensor:
        """Embeddings of every row of ``feat`` in chunks of ``batch_size`` rows; the graph and
        ``num_workers`` are unused (the signature is :meth:`Encoder.inference`'s)."""
        with evaluating(self):
            out = torch.empty(feat.shape[0], self.out_dim, dtype=next(self.parameters()).dtype)
            starts = range(0, feat.shape[0], batch_size)
            for start in tqdm(starts, desc="inference", disable=not progress):
                rows = slice(start, start + batch_size)
                out[rows] = self([], feat[rows].to(device)).cpu()
            return out
