"""GCN encoder with mean (random-walk) normalisation."""
from __future__ import annotations

import dgl
import dgl.nn
import torch
from torch import nn

from largegraph.models.base import Encoder, EncoderSpec
from largegraph.models.sparse import project


class GCNEncoder(Encoder):
    """Stack of ``dgl.nn.GraphConv`` layers with ``norm="right"`` (divide by in-degree).

    Symmetric normalisation (``norm="both"``) is deliberately not used: it scales each message by
    the source's out-degree, and on a sampled block or an inference chunk that degree counts only
    the block's edges, so mini-batch training and layer-wise inference would disagree with a
    full-graph forward. The in-degree of a destination node is complete in a full-neighbour block,
    so ``"right"`` makes layer-wise inference exact.
    """

    def make_layer(self, spec: EncoderSpec, i: int, d_in: int, d_out: int) -> nn.Module:
        # Zero in-degree nodes (isolated, or unsampled) just get the bias instead of raising.
        return dgl.nn.GraphConv(d_in, d_out, norm="right", allow_zero_in_degree=True)

    def check_sparse_input(self) -> None:
        """GraphConv is linear before aggregating: sparse rows are projected first (no refusal)."""

    def sparse_layer(self, block, x: torch.Tensor) -> torch.Tensor:
        """GraphConv (``norm="right"``) over sparse rows: project, sum over in-edges, divide by in-degree."""
        conv = self.layers[0]
        h = dgl.ops.copy_u_sum(block, project(x, conv.weight.t()))
        rst = h / block.in_degrees().to(h).clamp(min=1).unsqueeze(-1)
        return rst + conv.bias if conv.bias is not None else rst

