"""Typed encoders: layer-wise inference equals a full forward, bases share weights, featureless tables."""
from __future__ import annotations

import dgl
import pytest
import torch
from typed_graphs import mag_toy

from largegraph.core.errors import ConfigError
from largegraph.models import EncoderSpec, build_typed_encoder
from largegraph.models.hetero import RGCNLayer, TypedEncoder, mean_message

ARCHS = ["rgcn", "rgat", "hsage"]


@pytest.mark.parametrize("arch", ARCHS)
def test_layerwise_inference_equals_full_graph_forward_for_every_type(arch):
    g = mag_toy()
    torch.manual_seed(0)
    tables, enc = build_typed_encoder(arch, EncoderSpec(num_layers=2, hidden=8, heads=2, norm="batch"), g)
    enc.train()
    enc([g, g], tables.whole(g))  # batch-norm running statistics other than the initial ones
    enc.eval()
    with torch.no_grad():
        full = enc([g, g], tables.whole(g))
    chunked = enc.inference(g, tables.whole(g), batch_size=37)
    assert set(chunked) == set(g.ntypes)
    for t in g.ntypes:
        assert chunked[t].shape == (g.num_nodes(t), 8)
        assert torch.allclose(chunked[t], full[t], atol=1e-5), t


def test_featureless_types_get_learnable_tables_at_the_featured_width():
    g = mag_toy()
    tables, enc = build_typed_encoder("rgcn", EncoderSpec(num_layers=2, hidden=8, num_bases=3), g)
    assert set(tables.tables) == {"author", "field"}
    assert tables.tables["author"].weight.shape == (200, 16)  # paper's width: one input width, shared bases
    h = tables({"author": torch.tensor([1, 2]), "paper": torch.tensor([0])}, {"paper": torch.zeros(1, 16)})
    assert h["author"].requires_grad and torch.equal(h["paper"], torch.zeros(1, 16))


def test_basis_decomposition_shares_bases_over_relations():
    rels = [("a", f"r{i}", "a") for i in range(10)]
    per_relation = RGCNLayer(rels, {"a": 16}, 16)
    based = RGCNLayer(rels, {"a": 16}, 16, num_bases=2)
    count = lambda m: sum(p.numel() for n, p in m.named_parameters() if not n.startswith("loop"))  # noqa: E731
    assert count(per_relation) == 10 * 16 * 16 and count(based) == 2 * 16 * 16 + 10 * 2
    w = based.relation_weights()
    assert torch.allclose(w[3], based.coeff[3, 0] * based.bases[0] + based.coeff[3, 1] * based.bases[1])


def test_bases_over_different_input_widths_is_a_config_error():
    with pytest.raises(ConfigError, match="num_bases"):
        TypedEncoder("rgcn", EncoderSpec(num_layers=1, hidden=8, num_bases=2), [("a", "r", "b"), ("b", "s", "a")],
                     {"a": 4, "b": 6}, 8)


def test_rgat_hidden_must_divide_by_heads():
    with pytest.raises(ConfigError, match="divisible"):
        build_typed_encoder("rgat", EncoderSpec(num_layers=1, hidden=10, heads=4), mag_toy())


@pytest.mark.parametrize("src_rows,dst_rows", [(500, 4), (4, 500)])
def test_mean_message_is_the_same_whichever_order_it_picks(src_rows, dst_rows):
    torch.manual_seed(0)
    src, dst = torch.randint(0, src_rows, (300,)), torch.randint(0, dst_rows, (300,))
    block = dgl.create_block((src, dst), num_src_nodes=src_rows, num_dst_nodes=dst_rows)
    h, weight = torch.randn(src_rows, 16), torch.randn(16, 8)
    expected = dgl.ops.copy_u_mean(block, h) @ weight
    assert torch.allclose(mean_message(block, h, weight), expected, atol=1e-5)
