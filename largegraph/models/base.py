"""Shared encoder machinery: the layer loop, between-layer treatment and layer-wise inference."""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Iterator

import dgl
import torch
from torch import nn
from tqdm.auto import tqdm

from largegraph.data.sparse import SparseFeatures
from largegraph.core.errors import ConfigError
from largegraph.models.sparse import dropout_values, is_sparse
from largegraph.core.madvise import release_pages

@dataclass(frozen=True)
class EncoderSpec:
    """The shape of an encoder, whatever its architecture (the config's ``model`` section less ``arch``).

    Attributes:
        num_layers: layers (message-passing layers for graph encoders).
        hidden: width between layers.
        dropout, input_dropout: dropout between layers and on the input features.
        norm: ``none``, ``batch`` or ``layer`` normalisation between layers.
        activation: ``relu``, ``elu`` or ``gelu``.
        activate_output: apply the activation to the last layer's output too.
        aggregator: GraphSAGE's neighbour aggregator.
        heads: GAT's (and RGAT's) attention heads.
        num_bases: RGCN's shared basis matrices (0: one weight per relation).
        gin_eps, gin_eps_learnable: GIN's weight of a node's own input is ``1 + gin_eps``; learnt per
            layer (from that start) when ``gin_eps_learnable``.
    """

    num_layers: int = 2
    hidden: int = 256
    dropout: float = 0.5
    input_dropout: float = 0.0
    norm: str = "none"
    activation: str = "relu"
    activate_output: bool = False
    aggregator: str = "mean"
    heads: int = 4
    num_bases: int = 0
    gin_eps: float = 0.0
    gin_eps_learnable: bool = False


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode (dropout off, batch-norm running statistics) for the block, then back
    in the mode it was in, whatever the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}


def make_activation(kind: str) -> nn.Module:
    """Return the activation named by ``model.activation``."""
    return _ACTIVATIONS[kind]()


def make_norm(kind: str, dim: int) -> nn.Module:
    """Return the per-node normalisation named by ``model.norm`` for width ``dim``."""
    if kind == "batch":
        return nn.BatchNorm1d(dim)
    if kind == "layer":
        return nn.LayerNorm(dim)
    return nn.Identity()


def layer_loader(g, nodes, batch_size: int, num_workers: int = 0) -> dgl.dataloading.DataLoader:
    """Chunks of ``batch_size`` output ``nodes`` (ids, or ``{type: ids}``) with their one-layer full
    neighbourhood: what layer-wise inference iterates over once per layer. Call inside
    ``warnings.catch_warnings()``."""
    # DGL repeats this advice on every pass over the loader, i.e. once per layer here.
    warnings.filterwarnings("ignore", message="Dataloader CPU affinity opt is not enabled")
    return dgl.dataloading.DataLoader(
        g, nodes, dgl.dataloading.MultiLayerFullNeighborSampler(1), batch_size=batch_size, shuffle=False,
        drop_last=False, num_workers=num_workers,
        # keep the global RNG (dropout's stream) untouched by evaluation
        generator=torch.Generator())


class Encoder(nn.Module):
    """Node features -> node embeddings of width ``out_dim``.

    Subclasses fill ``self.layers`` (one module per layer) and implement :meth:`_layer`. Between
    layers the base applies norm -> activation -> dropout; the last layer's output is left raw
    because it is an embedding that a task head consumes (``activate_output`` applies the activation
    to it, without norm or dropout).

    Attributes:
        in_dim: input feature width.
        out_dim: embedding width.
        num_layers: number of layers (message-passing layers for graph encoders).
        uses_graph: False for encoders that ignore the graph (MLP).
    """

    uses_graph: bool = True

    def __init__(self, spec: EncoderSpec, in_dim: int, out_dim: int) -> None:
        """Args:
            spec: the encoder's shape.
            in_dim: input feature width.
            out_dim: width of the final embedding.
        """
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.num_layers = spec.num_layers
        self.hidden_dim = spec.hidden
        self.input_dropout = nn.Dropout(spec.input_dropout)
        self.norms = nn.ModuleList(make_norm(spec.norm, spec.hidden) for _ in range(spec.num_layers - 1))
        self.activation = make_activation(spec.activation)
        self.activate_output = spec.activate_output
        self.dropout = nn.Dropout(spec.dropout)
        self.layers = nn.ModuleList(
            self.make_layer(spec, i, d_in, d_out) for i, (d_in, d_out) in enumerate(self.layer_dims()))

    def make_layer(self, spec: EncoderSpec, i: int, d_in: int, d_out: int) -> nn.Module:
        """Build layer ``i`` mapping width ``d_in`` to ``d_out``."""
        raise NotImplementedError

    def layer_dims(self) -> list[tuple[int, int]]:
        """(input width, output width) of every layer, first to last."""
        dims = [self.in_dim] + [self.hidden_dim] * (self.num_layers - 1) + [self.out_dim]
        return list(zip(dims[:-1], dims[1:]))

    def _layer(self, i: int, block: Any, h: torch.Tensor) -> torch.Tensor:
        """Apply layer ``i`` to ``h`` over ``block``; returns a 2-D (nodes, width) tensor."""
        return self.layers[i](block, h)

    def check_sparse_input(self) -> None:
        """Raise ConfigError, saying what to do instead, unless the first layer can take sparse rows
        (:meth:`sparse_layer`)."""
        raise ConfigError(f"model.arch {type(self).__name__.removesuffix('Encoder').lower()} cannot take sparse "
                          f"features; use model.arch sage, gcn, gin or mlp, or set data.sparse_features=densify")

    def sparse_layer(self, block: Any, x: torch.Tensor) -> torch.Tensor:
        """Layer 0 over sparse CSR input rows ``x`` (:mod:`largegraph.models.sparse`); equals
        ``_layer(0, block, x.to_dense())`` with the same parameters."""
        raise NotImplementedError

    def _after(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Between-layer treatment after layer ``i``; nothing after the last layer."""
        if i == self.num_layers - 1:
            return self.activation(h) if self.activate_output else h
        return self.dropout(self.activation(self.norms[i](h)))

    def forward(self, blocks: list, x: torch.Tensor) -> torch.Tensor:
        """Compute embeddings.

        Args:
            blocks: one DGL block (or whole DGLGraph, for a full-graph pass) per layer.
            x: features of ``blocks[0]``'s source nodes: dense, or sparse CSR rows.

        Returns:
            Embeddings (num dst nodes of ``blocks[-1]``, out_dim).
        """
        if len(blocks) != self.num_layers:
            raise ValueError(
                f"{type(self).__name__} has {self.num_layers} layers but got {len(blocks)} blocks")
        if is_sparse(x):
            h = self._after(0, self.sparse_layer(blocks[0], dropout_values(x, self.input_dropout)))
            for i in range(1, self.num_layers):
                h = self._after(i, self._layer(i, blocks[i], h))
            return h
        h = self.input_dropout(x)
        for i, block in enumerate(blocks):
            h = self._after(i, self._layer(i, block, h))
        return h

    @torch.no_grad()
    def inference(self, g: dgl.DGLGraph, feat: torch.Tensor, batch_size: int,
                  device: torch.device | str = "cpu", num_workers: int = 0,
                  progress: bool = False) -> torch.Tensor:
        """Exact full-neighbour embeddings of every node of ``g``, computed layer by layer.

        Layer ``l`` is computed for all nodes (in chunks of ``batch_size`` output nodes) before layer
        ``l+1``, so memory stays at about two (N, hidden) CPU buffers plus one chunk, instead of the
        exponential neighbourhood a per-node forward would need. Equals ``forward([g] * num_layers,
        feat)`` in eval mode.

        Args:
            g: the whole graph.
            feat: (N, D) features of all nodes, dense or :class:`SparseFeatures`; rows are gathered
                per chunk, never copied whole.
            batch_size: output nodes per chunk.
            device: where each chunk is computed.
            num_workers: sampling worker processes for the chunk loader.
            progress: show a tqdm bar per layer.

        Returns:
            (N, out_dim) embeddings on CPU.

        An encoder without message passing (``uses_graph`` False) runs over chunks of rows instead.
        """
        # eval mode: dropout off and batch-norm running stats, so inference is deterministic
        if not self.uses_graph:
            with evaluating(self):
                return self._rowwise(feat, batch_size, device, progress)
        with evaluating(self), warnings.catch_warnings():
            loader = layer_loader(g, g.nodes(), batch_size, num_workers)
            dtype = next(self.parameters()).dtype
            h = feat
            for i in range(self.num_layers):
                width = self.out_dim if i == self.num_layers - 1 else self.hidden_dim
                out = torch.empty(g.num_nodes(), width, dtype=dtype)
                desc = f"inference layer {i + 1}/{self.num_layers}"
                for input_nodes, output_nodes, blocks in tqdm(loader, desc=desc, disable=not progress):
                    if i == 0 and isinstance(h, SparseFeatures):
                        y = self._after(0, self.sparse_layer(blocks[0].to(device), h.rows(input_nodes.cpu()).to(device)))
                        out[output_nodes.cpu()] = y.cpu()
                        continue
                    # stored features may be float16/bfloat16 (data.feature_dtype): computed in the model's dtype
                    x = h[input_nodes.to(h.device)].to(device=device, dtype=dtype)
                    if i == 0:
                        x = self.input_dropout(x)
                    y = self._after(i, self._layer(i, blocks[0].to(device), x))
                    out[output_nodes.cpu()] = y.cpu()
                    # else this chunk's gathered rows (input nodes x hidden: 0.7 GB for 16,384 output
                    # nodes of ogbn-products) live on while the next chunk's are gathered
                    del x, y
                if i == 0:
                    # mapped features are not read again: their resident pages need not count
                    # against this process while the (N, hidden) buffers of later layers fill
                    for array in feat.arrays() if isinstance(feat, SparseFeatures) else [feat]:
                        release_pages(array)
                h = out
            return h

    def _rowwise(self, feat: torch.Tensor, batch_size: int, device, progress: bool) -> torch.Tensor:
        """Inference of an encoder that uses no graph: ``forward`` over chunks of feature rows."""
        out = torch.empty(feat.shape[0], self.out_dim, dtype=next(self.parameters()).dtype)
        for start in tqdm(range(0, feat.shape[0], batch_size), desc="inference", disable=not progress):
            rows = slice(start, start + batch_size)
            if isinstance(feat, SparseFeatures):
                out[rows] = self([], feat[rows].to(device)).cpu()
                continue
            out[rows] = self([], feat[rows].to(device=device, dtype=out.dtype)).cpu()
        return out
