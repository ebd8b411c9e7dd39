"""Typed encoders (RGCN, RGAT, GraphSAGE per relation) over typed blocks, and their layer-wise inference.

A typed encoder maps a dict ``{node type: (N_t, D_t) features}`` to ``{node type: (N_t, out_dim)}``.
Each layer sums per-relation messages into every destination type; the between-layer treatment
(norm, activation, dropout) is the homogeneous :class:`~largegraph.models.base.Encoder`'s, applied
per type.
"""
from __future__ import annotations

import warnings

import dgl
import dgl.nn
import torch
from torch import nn
from tqdm.auto import tqdm

from largegraph.core.errors import ConfigError
from largegraph.models.base import _ACTIVATIONS, EncoderSpec, evaluating, layer_loader, make_norm

Relation = tuple[str, str, str]
TYPED_ARCHS = ("rgcn", "rgat", "hsage")


def _xavier(*shape: int) -> nn.Parameter:
    return nn.Parameter(nn.init.xavier_uniform_(torch.empty(*shape)))


class RGCNLayer(nn.Module):
    """Relational GCN layer (Schlichtkrull et al.): ``h'_d = W_self[type d] h_d + sum_r mean_{u in N_r(d)} W_r h_u``.

    With ``num_bases`` > 0 every relation's ``W_r = sum_b a_rb V_b`` over shared bases ``V_b``, which
    keeps the parameter count flat as relations are added (all source types then need one width).
    """

    def __init__(self, relations: list[Relation], in_dims: dict[str, int], out_dim: int, num_bases: int = 0):
        super().__init__()
        self.relations = relations
        self.num_bases = num_bases
        if num_bases:
            widths = {in_dims[s] for s, _, _ in relations}
            if len(widths) != 1:
                raise ConfigError(f"model.num_bases needs one input width for every node type, got "
                                  f"{sorted(widths)}; set model.num_bases=0")
            self.bases = _xavier(num_bases, widths.pop(), out_dim)
            self.coeff = _xavier(len(relations), num_bases)
        else:
            self.weights = nn.ParameterList(_xavier(in_dims[s], out_dim) for s, _, _ in relations)
        self.loop = nn.ModuleDict({t: nn.Linear(d, out_dim) for t, d in in_dims.items()})

    def relation_weights(self) -> list[torch.Tensor]:
        """``W_r`` of every relation, in ``relations`` order."""
        if self.num_bases:
            return list(torch.einsum("rb,bio->rio", self.coeff, self.bases).unbind(0))
        return list(self.weights)

    def forward(self, block, h: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {t: self.loop[t](h[t][:block.num_dst_nodes(t)]) for t in block.dsttypes if t in h}
        for rel, weight in zip(self.relations, self.relation_weights()):
            # A relation without edges in this block still runs (zeros), so that every weight takes
            # part in each step, as data-parallel training needs
            out[rel[2]] = out[rel[2]] + mean_message(block[rel], h[rel[0]], weight)
        return out


def mean_message(graph, h_src: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``mean_{u in N(d)} h_u @ weight`` for every destination ``d`` of ``graph``, in the cheaper order.

    The mean is linear, so projecting first and averaging first give the same message; their costs
    differ a lot on sampled blocks: a first layer's source rows (every input node of the type) far
    outnumber its destinations, and the last layer's destinations are only the seeds. Multiply-adds:
    project first ``N_src*in*out + E*out``, average first ``E*in + N_dst*in*out``.
    """
    edges, (d_in, d_out) = graph.num_edges(), weight.shape
    if h_src.shape[0] * d_in * d_out + edges * d_out <= edges * d_in + graph.num_dst_nodes() * d_in * d_out:
        return dgl.ops.copy_u_mean(graph, h_src @ weight)
    return dgl.ops.copy_u_mean(graph, h_src) @ weight


class RelationConvs(nn.Module):
    """One DGL conv per relation (``HeteroGraphConv``, summed per destination type) plus an optional
    self-loop per type; types that receive no relation still get an output (their self-loop, or zeros)."""

    def __init__(self, convs: dict[Relation, nn.Module], in_dims: dict[str, int], out_dim: int, self_loop: bool):
        super().__init__()
        self.conv = dgl.nn.HeteroGraphConv(convs, aggregate="sum")
        self.out_dim = out_dim
        self.loop = nn.ModuleDict({t: nn.Linear(d, out_dim) for t, d in in_dims.items()}) if self_loop else None

    def forward(self, block, h: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        msgs = self.conv(block, h)
        out = {}
        for t in block.dsttypes:
            if t not in h:
                continue
            n = block.num_dst_nodes(t)
            y = msgs[t].flatten(1) if t in msgs else h[t].new_zeros(n, self.out_dim)  # GAT's heads concatenated
            out[t] = y + self.loop[t](h[t][:n]) if self.loop is not None else y
        return out


def make_typed_layer(arch: str, spec: EncoderSpec, relations: list[Relation], in_dims: dict[str, int],
                     out_dim: int) -> nn.Module:
    """Layer of ``arch`` mapping per-type widths ``in_dims`` to ``out_dim``."""
    if arch == "rgcn":
        return RGCNLayer(relations, in_dims, out_dim, spec.num_bases)
    if arch == "hsage":
        convs = {r: dgl.nn.SAGEConv((in_dims[r[0]], in_dims[r[2]]), out_dim, spec.aggregator) for r in relations}
        return RelationConvs(convs, in_dims, out_dim, self_loop=False)
    if out_dim % spec.heads:
        raise ConfigError(f"model.hidden {out_dim} is not divisible by model.heads {spec.heads}")
    convs = {r: dgl.nn.GATConv((in_dims[r[0]], in_dims[r[2]]), out_dim // spec.heads, spec.heads,
                               allow_zero_in_degree=True) for r in relations}
    return RelationConvs(convs, in_dims, out_dim, self_loop=True)


class TypedEncoder(nn.Module):
    """Typed node features -> typed node embeddings of width ``out_dim`` (``rgcn``, ``rgat``, ``hsage``).

    Attributes:
        in_dims: input width per node type (a featureless type's learned table width).
        out_dim: embedding width.
        num_layers: message-passing layers.
        uses_graph: always True (an MLP on a typed dataset uses the homogeneous encoder).
    """

    uses_graph = True

    def __init__(self, arch: str, spec: EncoderSpec, relations: list[Relation], in_dims: dict[str, int],
                 out_dim: int):
        """Args:
            arch: a key of :data:`TYPED_ARCHS`.
            spec: the encoder's shape.
            relations: the graph's canonical edge types.
            in_dims: input width per node type.
            out_dim: width of the final embedding.
        """
        super().__init__()
        self.in_dims = dict(in_dims)
        self.out_dim = out_dim
        self.num_layers = spec.num_layers
        self.hidden_dim = spec.hidden
        self.activation = _ACTIVATIONS[spec.activation]()
        self.activate_output = spec.activate_output
        self.dropout = nn.Dropout(spec.dropout)
        self.input_dropout = nn.Dropout(spec.input_dropout)
        types = sorted(in_dims)
        self.norms = nn.ModuleList(nn.ModuleDict({t: make_norm(spec.norm, spec.hidden) for t in types})
                                   for _ in range(spec.num_layers - 1))
        widths = [self.in_dims] + [{t: spec.hidden for t in types}] * (spec.num_layers - 1)
        outs = [spec.hidden] * (spec.num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(make_typed_layer(arch, spec, list(relations), w, o) for w, o in zip(widths, outs))

    def _after(self, i: int, h: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if i == self.num_layers - 1:
            return {t: self.activation(v) for t, v in h.items()} if self.activate_output else h
        return {t: self.dropout(self.activation(self.norms[i][t](v))) for t, v in h.items()}

    def forward(self, blocks: list, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Embeddings of ``blocks[-1]``'s destination nodes, per type.

        Args:
            blocks: one typed block (or the whole heterograph) per layer.
            x: input rows of ``blocks[0]``'s source nodes, per type.
        """
        if len(blocks) != self.num_layers:
            raise ValueError(f"{type(self).__name__} has {self.num_layers} layers but got {len(blocks)} blocks")
        h = {t: self.input_dropout(v) for t, v in x.items()}
        for i, block in enumerate(blocks):
            h = self._after(i, self.layers[i](block, h))
        return h

    @torch.no_grad()
    def inference(self, g: dgl.DGLHeteroGraph, feat: dict[str, torch.Tensor], batch_size: int,
                  device: torch.device | str = "cpu", progress: bool = False) -> dict[str, torch.Tensor]:
        """Exact full-neighbour embeddings of every node of every type, layer by layer.

        As the homogeneous :meth:`~largegraph.models.base.Encoder.inference`: layer ``l`` for every
        node (in chunks of ``batch_size`` output nodes, all types together) before layer ``l+1``, so
        memory stays at two sets of (N_t, hidden) CPU buffers plus one chunk. Equals
        ``forward([g] * num_layers, feat)`` in eval mode.

        Returns:
            ``{type: (N_t, out_dim)}`` on CPU.
        """
        with evaluating(self), warnings.catch_warnings():
            loader = layer_loader(g, {t: g.nodes(t) for t in g.ntypes}, batch_size)
            dtype = next(self.parameters()).dtype
            h = feat
            for i in range(self.num_layers):
                width = self.out_dim if i == self.num_layers - 1 else self.hidden_dim
                out = {t: torch.empty(g.num_nodes(t), width, dtype=dtype) for t in g.ntypes}
                for input_nodes, output_nodes, blocks in tqdm(loader, desc=f"inference layer {i + 1}/{self.num_layers}",
                                                              disable=not progress):
                    x = {t: h[t][ids.cpu()].to(device=device, dtype=dtype) for t, ids in input_nodes.items()}
                    if i == 0:
                        x = {t: self.input_dropout(v) for t, v in x.items()}
                    y = self._after(i, self.layers[i](blocks[0].to(device), x))
                    for t, ids in output_nodes.items():
                        out[t][ids.cpu()] = y[t].cpu()
                h = out
            return h


class TypedInput(nn.Module):
    """The input rows of every node type: its features, or for a featureless type (ogbn-mag's authors,
    institutions, fields of study) a learnable table of node vectors trained with the model.

    Args:
        num_nodes: nodes per featureless type (the tables' rows).
        dim: the tables' width.
    """

    def __init__(self, num_nodes: dict[str, int], dim: int):
        super().__init__()
        # drawn in type order, so initial weights depend only on the seed and the types
        self.tables = nn.ModuleDict()
        for t in sorted(num_nodes):
            table = nn.Embedding(num_nodes[t], dim)
            nn.init.xavier_uniform_(table.weight)
            self.tables[t] = table

    def forward(self, input_nodes: dict[str, torch.Tensor], x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``x`` with every featureless type's rows looked up (inside forward, where DDP sees the gradient)."""
        looked_up = {t: table(input_nodes[t]) for t, table in self.tables.items() if t in input_nodes}
        return {**x, **looked_up}

    def whole(self, graph) -> dict[str, torch.Tensor]:
        """Every node's input rows (what layer-wise inference starts from)."""
        feats = {t: graph.nodes[t].data["feat"] for t in graph.ntypes if "feat" in graph.nodes[t].data}
        return {**feats, **{t: table.weight.detach().cpu() for t, table in self.tables.items()}}


def typed_in_dims(graph, table_dim: int) -> tuple[dict[str, int], dict[str, int]]:
    """(input width per type, nodes per featureless type) of ``graph``, featureless types at ``table_dim``."""
    featureless = {t: graph.num_nodes(t) for t in graph.ntypes if "feat" not in graph.nodes[t].data}
    dims = {t: table_dim if t in featureless else int(graph.nodes[t].data["feat"].shape[1]) for t in graph.ntypes}
    return dims, featureless


def table_width(graph, hidden: int) -> int:
    """Width of featureless types' tables: the featured types' width when they share one (ogbn-mag:
    paper's 128, so that the first layer sees one input width and RGCN's bases can be shared, as in
    DGL's RGCN example), else ``hidden`` (as the homogeneous featureless case)."""
    widths = {int(graph.nodes[t].data["feat"].shape[1]) for t in graph.ntypes if "feat" in graph.nodes[t].data}
    return widths.pop() if len(widths) == 1 else hidden


def build_typed_encoder(arch: str, spec: EncoderSpec, graph, out_dim: int | None = None
                        ) -> tuple[TypedInput, TypedEncoder]:
    """The input tables (drawn first) and the typed encoder ``arch`` for ``graph``'s types and relations
    (featureless types' tables as :func:`table_width` says)."""
    dims, featureless = typed_in_dims(graph, table_width(graph, spec.hidden))
    tables = TypedInput(featureless, dims[next(iter(featureless))] if featureless else spec.hidden)
    return tables, TypedEncoder(arch, spec, list(graph.canonical_etypes), dims,
                                spec.hidden if out_dim is None else out_dim)
