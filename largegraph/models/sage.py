"""GraphSAGE encoder (mean / pool / gcn aggregators)."""
from __future__ import annotations

import dgl
import dgl.nn
import torch
from torch import nn

from largegraph.core.errors import ConfigError
from largegraph.models.base import Encoder, EncoderSpec
from largegraph.models.sparse import first_rows, project


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

    def check_sparse_input(self) -> None:
        aggregator = self.layers[0]._aggre_type
        if aggregator not in ("mean", "gcn"):
            # pool and lstm apply a non-linearity to the full-width input before aggregating
            raise ConfigError(f"model.aggregator {aggregator} cannot take sparse features; use model.aggregator "
                              f"mean or gcn, or set data.sparse_features=densify")

    def sparse_layer(self, block, x: torch.Tensor) -> torch.Tensor:
        """SAGEConv's projection-first order (DGL's, for input wider than output) over sparse rows."""
        conv = self.layers[0]
        n_dst = block.num_dst_nodes() if block.is_block else block.num_nodes()
        h_src = project(x, conv.fc_neigh.weight)
        if conv._aggre_type == "gcn":
            h = dgl.ops.copy_u_sum(block, h_src) if block.num_edges() else torch.zeros_like(h_src[:n_dst])
            rst = (h + h_src[:n_dst]) / (block.in_degrees().to(h).unsqueeze(-1) + 1)
            return rst + conv.bias if conv.bias is not None else rst
        h_neigh = dgl.ops.copy_u_mean(block, h_src) if block.num_edges() else torch.zeros_like(h_src[:n_dst])
        rst = project(first_rows(x, n_dst), conv.fc_self.weight) + h_neigh
        return rst + conv.fc_self.bias if conv.fc_self.bias is not None else rst
