"""Encoders: layer-wise inference equals a full-graph forward; sampled training works."""
from __future__ import annotations

import dgl
import pytest
import torch

from largegraph.config import ModelConfig
from largegraph.core.errors import ConfigError
from largegraph.models import Encoder, EncoderSpec, build_encoder

IN_DIM = 16
ARCHS = [
    {"arch": "sage", "aggregator": "mean"},
    {"arch": "sage", "aggregator": "pool"},
    {"arch": "sage", "aggregator": "gcn"},
    {"arch": "gat", "heads": 4},
    {"arch": "gcn"},
    {"arch": "gin"},
    {"arch": "mlp"},
]
ARCH_IDS = [f"{a['arch']}-{a.get('aggregator', '')}".rstrip("-") for a in ARCHS]


@pytest.fixture(scope="module")
def graph() -> dgl.DGLGraph:
    torch.manual_seed(0)
    g = dgl.rand_graph(280, 1200)
    g = dgl.add_reverse_edges(g)
    g.add_nodes(20)  # isolated nodes: zero in-degree must not break any layer
    g.ndata["feat"] = torch.randn(g.num_nodes(), IN_DIM)
    return g


def _cfg(norm: str = "none", num_layers: int = 2, **kw) -> ModelConfig:
    return ModelConfig(hidden=32, num_layers=num_layers, dropout=0.3, input_dropout=0.1, norm=norm, **kw)


def _build(cfg: ModelConfig, in_dim: int, out_dim: int | None = None) -> Encoder:
    # as a run assembles it: the config's model section, less its arch, is the encoder's shape
    return build_encoder(cfg.arch, EncoderSpec(**cfg.model_dump(exclude={"arch"})), in_dim, out_dim)


def _randomise_norm_stats(model: Encoder) -> None:
    # Fresh batch-norm stats are (0, 1), which would hide a wrong eval-mode path; make them non-trivial.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
def test_layerwise_inference_matches_full_forward(graph, arch, norm):
    torch.manual_seed(1)
    model = _build(_cfg(norm=norm, **arch), IN_DIM, out_dim=8)
    _randomise_norm_stats(model)
    model.eval()
    feat = graph.ndata["feat"]
    with torch.no_grad():
        full = model([graph] * model.num_layers, feat)
    layerwise = model.inference(graph, feat, batch_size=37)
    assert layerwise.shape == (graph.num_nodes(), 8)
    assert layerwise.device.type == "cpu"
    torch.testing.assert_close(layerwise, full, atol=1e-5, rtol=1e-5)
    assert not model.training


@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
def test_activate_output_applies_the_activation_to_the_embedding(graph, arch):
    torch.manual_seed(3)
    raw = _build(_cfg(**arch), IN_DIM, out_dim=8).eval()
    activated = _build(_cfg(activate_output=True, **arch), IN_DIM, out_dim=8).eval()
    activated.load_state_dict(raw.state_dict())
    feat = graph.ndata["feat"]
    with torch.no_grad():
        h = raw([graph] * raw.num_layers, feat)
        assert (h < 0).any()
        torch.testing.assert_close(activated([graph] * raw.num_layers, feat), torch.relu(h))
        torch.testing.assert_close(activated.inference(graph, feat, batch_size=64), torch.relu(h),
                                   atol=1e-5, rtol=1e-5)


def test_inference_restores_training_mode(graph):
    model = _build(_cfg(arch="sage"), IN_DIM)
    model.train()
    a = model.inference(graph, graph.ndata["feat"], batch_size=64)
    b = model.inference(graph, graph.ndata["feat"], batch_size=300)
    assert model.training  # dropout was off inside, so both runs agree regardless of chunking
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
def test_sampled_blocks_forward_and_gradients(graph, arch):
    torch.manual_seed(2)
    model = _build(_cfg(norm="batch", **arch), IN_DIM, out_dim=5)
    model.train()
    sampler = dgl.dataloading.NeighborSampler([5, 5])
    loader = dgl.dataloading.DataLoader(graph, torch.arange(64), sampler, batch_size=32, shuffle=True)
    input_nodes, seeds, blocks = next(iter(loader))
    if model.uses_graph:
        out = model(blocks, graph.ndata["feat"][input_nodes])
    else:
        out = model([], graph.ndata["feat"][seeds])
    assert out.shape == (len(seeds), 5)
    out.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient reached {name}"
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
@pytest.mark.parametrize("num_layers", [1, 3])
def test_output_width(graph, arch, num_layers):
    model = _build(_cfg(num_layers=num_layers, **arch), IN_DIM)
    assert (model.in_dim, model.out_dim, model.num_layers) == (IN_DIM, 32, num_layers)
    model.eval()
    blocks = [graph] * num_layers if model.uses_graph else []
    with torch.no_grad():
        assert model(blocks, graph.ndata["feat"]).shape == (graph.num_nodes(), 32)
    custom = _build(_cfg(num_layers=num_layers, **arch), IN_DIM, out_dim=3)
    assert custom.inference(graph, graph.ndata["feat"], batch_size=100).shape == (graph.num_nodes(), 3)


def test_uses_graph_flag():
    assert not _build(_cfg(arch="mlp"), IN_DIM).uses_graph
    assert all(_build(_cfg(arch=a), IN_DIM).uses_graph for a in ("sage", "gat", "gcn", "gin"))


def test_gat_hidden_not_divisible_by_heads():
    with pytest.raises(ConfigError, match=r"model\.hidden.*model\.heads"):
        _build(ModelConfig(arch="gat", hidden=30, heads=4), IN_DIM)


def test_wrong_number_of_blocks(graph):
    model = _build(_cfg(arch="sage"), IN_DIM)
    with pytest.raises(ValueError, match="2 layers but got 1 blocks"):
        model([graph], graph.ndata["feat"])


def test_config_and_encoders_agree_on_which_architectures_pass_no_messages():
    from largegraph.config import GRAPH_FREE_ARCHS
    from largegraph.models import ENCODERS

    assert {arch for arch, cls in ENCODERS.items() if not cls.uses_graph} == GRAPH_FREE_ARCHS
