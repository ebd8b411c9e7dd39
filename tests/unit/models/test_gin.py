"""GIN: the layer computes MLP((1 + eps) h_v + sum of neighbours), whichever order it takes; eps fixed or learnt."""
from __future__ import annotations

import dgl
import pytest
import torch

from largegraph.config import ModelConfig
from largegraph.models import EncoderSpec, build_encoder
from largegraph.models.gin import GINLayer


def _spec(**kw) -> EncoderSpec:
    return EncoderSpec(**ModelConfig(arch="gin", hidden=8, **kw).model_dump(exclude={"arch"}))


@pytest.fixture(scope="module")
def graph() -> dgl.DGLGraph:
    torch.manual_seed(0)
    g = dgl.add_reverse_edges(dgl.rand_graph(60, 200))
    g.add_nodes(5)  # isolated: their sum is empty
    return g


def _by_hand(layer: GINLayer, g: dgl.DGLGraph, x: torch.Tensor) -> torch.Tensor:
    src, dst = g.edges()
    neigh = torch.zeros_like(x).index_add_(0, dst, x[src])
    return layer.apply_func((1 + layer.eps) * x + neigh)


@pytest.mark.parametrize("d_in, d_out", [(4, 8), (20, 8)], ids=["widening", "narrowing"])
@pytest.mark.parametrize("eps", [0.0, 0.4])
def test_layer_is_the_mlp_of_self_plus_neighbour_sum(graph, d_in, d_out, eps):
    torch.manual_seed(1)
    layer = GINLayer(d_in, d_out, _spec(gin_eps=eps, norm="layer")).eval()
    x = torch.randn(graph.num_nodes(), d_in)
    with torch.no_grad():
        torch.testing.assert_close(layer(graph, x), _by_hand(layer, graph, x), atol=1e-5, rtol=1e-5)


def test_narrowing_layer_on_a_sampled_block_equals_dgls_order(graph):
    torch.manual_seed(2)
    layer = GINLayer(20, 8, _spec(gin_eps=0.2)).eval()
    x = torch.randn(graph.num_nodes(), 20)
    block = dgl.to_block(dgl.sampling.sample_neighbors(graph, torch.arange(10), 3), torch.arange(10))
    h = x[block.srcdata[dgl.NID]]
    with torch.no_grad():
        plain = dgl.nn.GINConv.forward(layer, block, h)  # DGL's order: sum, then the whole MLP
        torch.testing.assert_close(layer(block, h), plain, atol=1e-5, rtol=1e-5)


def test_eps_is_a_fixed_buffer_or_a_learnt_parameter(graph):
    fixed = build_encoder("gin", _spec(gin_eps=0.5), 6)
    assert not any("eps" in name for name, _ in fixed.named_parameters())
    assert all(float(layer.eps) == 0.5 for layer in fixed.layers)
    assert "layers.0.eps" in fixed.state_dict()  # saved with the model, so a change of eps is not silent

    learnt = build_encoder("gin", _spec(gin_eps=0.5, gin_eps_learnable=True), 6)
    x = torch.randn(graph.num_nodes(), 6)
    learnt([graph, graph], x).square().sum().backward()
    eps = [p for name, p in learnt.named_parameters() if name.endswith("eps")]
    assert len(eps) == 2 and all(p.grad is not None and p.grad.abs().sum() > 0 for p in eps)


def test_sum_aggregation_tells_degrees_apart():
    # Mean and max cannot tell a node with one neighbour from one with three identical neighbours; a sum can.
    g = dgl.graph((torch.tensor([1, 2, 3, 4]), torch.tensor([0, 5, 5, 5])), num_nodes=6)
    torch.manual_seed(3)
    encoder = build_encoder("gin", _spec(num_layers=1), 3, out_dim=4).eval()
    with torch.no_grad():
        h = encoder([g], torch.ones(6, 3))
    assert not torch.allclose(h[0], h[5])
