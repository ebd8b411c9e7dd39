"""GraphSAGE encoder (mean / pool / gcn aggregators)."""
from __future__ import annotations

import dgl
import dgl.nn
import torch
from torch import nn

from largegraph.models.base import Encoder, EncoderSpec


class FusedSAGEConv(dgl.nn.SAGEConv):
    """``dgl.nn.SAGEConv`` whose mean aggregator computes ``W_self h_dst + W_neigh mean(h_src) + b``
    as one matrix product, ``[h_dst | mean(h_src)] @ [W_self | W_neigh]^T + b``.

    Same parameters (names, shapes, initial draws) as DGL's layer, so checkpoints and ``model.pt``
    files of either load into the other. One GEMM of twice the depth instead of two GEMMs, their
    sum and the bias add, in the forward and the backward pass. The mean is DGL's ``copy_u_mean``
    called directly, without setting and reading frame data on the block.

    Layers narrowing their input (input wider than output) keep DGL's order, projecting before
    aggregating, which sums fewer columns; so do the ``pool`` and ``gcn`` aggregators and weighted
    edges.
    """

    def forward(self, graph, feat, edge_weight=None):
        fused = (self._aggre_type == "mean" and edge_weight is None and not isinstance(feat, tuple)
                 and self._in_src_feats <= self._out_feats and self.fc_self.bias is not None)
        if not fused:
            return super().forward(graph, feat, edge_weight)
        h_src = self.feat_drop(feat)
        h_dst = h_src[: graph.num_dst_nodes()] if graph.is_block else h_src
        if graph.num_edges():
            h_neigh = dgl.ops.copy_u_mean(graph, h_src)
        else:
            h_neigh = torch.zeros_like(h_dst)
        weight = torch.cat([self.fc_self.weight, self.fc_neigh.weight], dim=1)
        rst = torch.addmm(self.fc_self.bias, torch.cat([h_dst, h_neigh], dim=1), weight.t())
        if self.activation is not None:
            rst = self.activation(rst)
        if self.norm is not None:
            rst = self.norm(rst)
        return rst


class SAGEEncoder(Encoder):
    """Stack of GraphSAGE layers with ``spec.aggregator`` (:class:`FusedSAGEConv`)."""

    def make_layer(self, spec: EncoderSpec, i: int, d_in: int, d_out: int) -> nn.Module:
        return FusedSAGEConv(d_in, d_out, aggregator_type=spec.aggregator)
