"""GIN encoder (Xu et al., "How Powerful are Graph Neural Networks?", ICLR 2019): sum aggregation and an
MLP update, ``h_v' = MLP((1 + eps) h_v + sum_{u in N(v)} h_u)``."""
from __future__ import annotations

import dgl
import dgl.nn
import torch
from torch import nn

from largegraph.models.base import Encoder, EncoderSpec, make_activation, make_norm
from largegraph.models.sparse import project


class GINLayer(dgl.nn.GINConv):
    """``dgl.nn.GINConv`` (sum aggregator) whose update is a two-layer MLP,
    ``Linear -> norm -> activation -> Linear``, as in the paper.

    The MLP's first Linear is applied before the sum when the input is wider than the output
    (``W((1 + eps) x_v + sum x_u) + b = (1 + eps) W x_v + sum W x_u + b``): the same result, with
    narrower rows to sum, as DGL's SAGE and GraphConv layers do for wide inputs; this is also how
    sparse input rows (:meth:`GINEncoder.sparse_layer`) are handled. Same parameters either way.
    """

    def __init__(self, d_in: int, d_out: int, spec: EncoderSpec) -> None:
        """Args:
            d_in, d_out: input and output width (the MLP's hidden width is ``d_out``).
            spec: the encoder's shape: ``gin_eps``, ``gin_eps_learnable``, ``norm``, ``activation``.
        """
        mlp = nn.Sequential(nn.Linear(d_in, d_out), make_norm(spec.norm, d_out), make_activation(spec.activation),
                            nn.Linear(d_out, d_out))
        super().__init__(mlp, aggregator_type="sum", init_eps=spec.gin_eps, learn_eps=spec.gin_eps_learnable)

    @property
    def first(self) -> nn.Linear:
        """The MLP's first Linear (the one that may be moved before the sum)."""
        return self.apply_func[0]

    def forward(self, graph, feat, edge_weight=None):
        if edge_weight is not None or isinstance(feat, tuple) or self.first.in_features <= self.first.out_features:
            return super().forward(graph, feat, edge_weight)
        return self.update(graph, feat @ self.first.weight.t())

    def update(self, graph, projected: torch.Tensor) -> torch.Tensor:
        """The layer's output from its source nodes' inputs already multiplied by the first Linear's
        weight (no bias); a block's destination nodes lead its source nodes."""
        h_dst = projected[: graph.num_dst_nodes()] if graph.is_block else projected
        neigh = dgl.ops.copy_u_sum(graph, projected) if graph.num_edges() else torch.zeros_like(h_dst)
        return self.apply_func[1:]((1 + self.eps) * h_dst + neigh + self.first.bias)


class GINEncoder(Encoder):
    """Stack of :class:`GINLayer` s (fixed ``eps`` by default: GIN-0, the paper's best variant;
    ``model.gin_eps_learnable`` learns it per layer).

    A destination node's sum runs over all its in-edges, so a full-neighbour block gives the same sum
    as the whole graph and layer-wise inference is exact. On a sampled block the sum runs over the
    sampled neighbours only (its scale follows the fanout, as in DGL's GIN examples).
    """

    def make_layer(self, spec: EncoderSpec, i: int, d_in: int, d_out: int) -> nn.Module:
        return GINLayer(d_in, d_out, spec)

    def check_sparse_input(self) -> None:
        """The MLP's first Linear is moved before the sum, so sparse rows are projected first (no refusal)."""

    def sparse_layer(self, block, x: torch.Tensor) -> torch.Tensor:
        layer = self.layers[0]
        return layer.update(block, project(x, layer.first.weight))
