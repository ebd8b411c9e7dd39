"""GCN encoder with mean (random-walk) normalisation."""
from __future__ import annotations

import dgl.nn
from torch import nn

from largegraph.models.base import Encoder, EncoderSpec


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

