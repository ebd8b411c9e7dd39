"""Encoders: node features -> node embeddings. Task heads live in ``largegraph.tasks``."""
from __future__ import annotations

from largegraph.models.base import Encoder, EncoderSpec, evaluating
from largegraph.models.gat import GATEncoder
from largegraph.models.gcn import GCNEncoder
from largegraph.models.gin import GINEncoder
from largegraph.models.hetero import TYPED_ARCHS, TypedEncoder, TypedInput, build_typed_encoder
from largegraph.models.mlp import MLPEncoder
from largegraph.models.sage import SAGEEncoder

ENCODERS: dict[str, type[Encoder]] = {
    "sage": SAGEEncoder, "gat": GATEncoder, "gcn": GCNEncoder, "mlp": MLPEncoder, "gin": GINEncoder,
}


def build_encoder(arch: str, spec: EncoderSpec, in_dim: int, out_dim: int | None = None) -> Encoder:
    """Build the encoder ``arch`` (a key of :data:`ENCODERS`).

    Args:
        arch: ``sage``, ``gat``, ``gcn``, ``gin`` or ``mlp``.
        spec: its shape.
        in_dim: input feature width.
        out_dim: embedding width; defaults to ``spec.hidden``.

    Returns:
        The encoder (in training mode).

    Raises:
        ConfigError: the shape is inconsistent (e.g. GAT hidden not divisible by heads).
    """
    return ENCODERS[arch](spec, in_dim, spec.hidden if out_dim is None else out_dim)


__all__ = ["TYPED_ARCHS", "TypedEncoder", "TypedInput", "build_typed_encoder", "ENCODERS", "Encoder", "EncoderSpec",
           "build_encoder", "evaluating", "SAGEEncoder", "GATEncoder", "GCNEncoder", "GINEncoder", "MLPEncoder"]
