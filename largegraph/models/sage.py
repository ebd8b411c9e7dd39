"""GraphSAGE encoder (mean / pool / gcn aggregators)."""
from __future__ import annotations

import dgl.nn
from torch import nn

from largegraph.models.base import Encoder, EncoderSpec


class SAGEEncoder(Encoder):
    """Stack of ``dgl.nn.SAGEConv`` layers with ``spec.aggregator``."""

    def make_layer(self, spec: EncoderSpec, i: int, d_in: int, d_out: int) -> nn.Module:
        return dgl.nn.SAGEConv(d_in, d_out, aggregator_type=spec.aggregator)

