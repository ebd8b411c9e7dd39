"""Encoders: node features -> node embeddings. Task heads live in ``largegraph.tasks``."""
from __future__ import annotations

from largegraph.config import ModelConfig
from largegraph.models.base import Encoder
from largegraph.models.gat import GATEncoder
from largegraph.models.gcn import GCNEncoder
from largegraph.models.mlp import MLPEncoder
from largegraph.models.sage import SAGEEncoder

_ENCODERS: dict[str, type[Encoder]] = {
    "sage": SAGEEncoder, "gat": GATEncoder, "gcn": GCNEncoder, "mlp": MLPEncoder,
}


def build_encoder(cfg: ModelConfig, in_dim: int, out_dim: int | None = None) -> Encoder:
    """Build the encoder named by ``cfg.arch``.

    Args:
        cfg: the model section of the job config.
        in_dim: input feature width.
        out_dim: embedding width; defaults to ``cfg.hidden``.

    Returns:
        The encoder (in training mode).

    Raises:
        ConfigError: the config is inconsistent (e.g. GAT hidden not divisible by heads).
    """
    return _ENCODERS[cfg.arch](cfg, in_dim, cfg.hidden if out_dim is None else out_dim)


__all__ = ["Encoder", "build_encoder", "SAGEEncoder", "GATEncoder", "GCNEncoder", "MLPEncoder"]
