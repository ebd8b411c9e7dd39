"""FusedSAGEConv (one GEMM for the self and neighbour weights) against DGL's SAGEConv."""
from __future__ import annotations

import dgl
import dgl.nn
import pytest
import torch

from largegraph.models.sage import FusedSAGEConv


def _block() -> dgl.DGLGraph:
    torch.manual_seed(0)
    g = dgl.rand_graph(400, 3000)
    g = dgl.add_nodes(g, 5)  # nodes without in-edges: the mean of nothing is zero in both
    _, _, blocks = dgl.dataloading.NeighborSampler([6]).sample_blocks(g, torch.arange(0, 405, 4))
    return blocks[0], g


@pytest.mark.parametrize("d_in,d_out", [(8, 24), (16, 16), (32, 8)])  # fused, fused, DGL's projection first
@pytest.mark.parametrize("aggregator", ["mean", "gcn", "pool"])
def test_same_outputs_and_gradients_as_dgl(d_in, d_out, aggregator):
    block, graph = _block()
    torch.manual_seed(1)
    ref = dgl.nn.SAGEConv(d_in, d_out, aggregator)
    torch.manual_seed(1)
    fused = FusedSAGEConv(d_in, d_out, aggregator)
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), fused.state_dict().values()))
    for g, rows in ((block, block.num_src_nodes()), (graph, graph.num_nodes())):
        x = torch.randn(rows, d_in)
        xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
        out_ref, out_fused = ref(g, xr), fused(g, xf)
        torch.testing.assert_close(out_fused, out_ref, rtol=1e-5, atol=1e-5)
        upstream = torch.randn_like(out_ref)
        out_ref.backward(upstream)
        out_fused.backward(upstream)
        torch.testing.assert_close(xf.grad, xr.grad, rtol=1e-5, atol=1e-5)
        for (name, p_ref), p_fused in zip(ref.named_parameters(), fused.parameters()):
            torch.testing.assert_close(p_fused.grad, p_ref.grad, rtol=1e-4, atol=1e-5, msg=name)
        ref.zero_grad()
        fused.zero_grad()


def test_weights_load_across_both_layers():
    fused = FusedSAGEConv(8, 16, "mean")
    ref = dgl.nn.SAGEConv(8, 16, "mean")
    ref.load_state_dict(fused.state_dict())  # model.pt files of runs before the fused layer still load
    fused.load_state_dict(ref.state_dict())
