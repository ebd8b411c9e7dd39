"""Sparse input features: the sparse first layer equals the dense one with the same weights, per batch
(real DGL sampling) and in layer-wise inference; encoders that cannot take them refuse in one line."""
from __future__ import annotations

import dgl
import numpy as np
import pytest
import scipy.sparse
import torch

from largegraph.config import ModelConfig, SamplerConfig
from largegraph.data.sparse import SparseFeatures
from largegraph.core.errors import ConfigError
from largegraph.models import EncoderSpec, build_encoder
from largegraph.sampling import NodeBatchLoader
from largegraph.tasks.node_classification import NodeClassifier

WIDTH = 200  # wider than hidden, as multi-hot features are: DGL's dense layers project before aggregating
SPARSE_ARCHS = [{"arch": "sage", "aggregator": "mean"}, {"arch": "sage", "aggregator": "gcn"}, {"arch": "gcn"},
                {"arch": "mlp"}, {"arch": "gin", "gin_eps": 0.3}]
IDS = ["sage-mean", "sage-gcn", "gcn", "mlp", "gin"]


@pytest.fixture(scope="module")
def graph_and_features():
    torch.manual_seed(0)
    g = dgl.add_reverse_edges(dgl.rand_graph(280, 1400))
    g.add_nodes(20)  # isolated nodes: zero in-degree
    matrix = scipy.sparse.random(g.num_nodes(), WIDTH, density=0.04, format="csr", dtype=np.float32,
                                 random_state=1)
    matrix.data[:] = np.round(matrix.data * 4) / 4 + 0.25
    return g, SparseFeatures.from_scipy(matrix)


def _model(arch: dict, seed: int = 0, **kw) -> NodeClassifier:
    torch.manual_seed(seed)
    cfg = ModelConfig(hidden=32, num_layers=2, dropout=0.0, input_dropout=0.0, **arch, **kw)
    encoder = build_encoder(cfg.arch, EncoderSpec(**cfg.model_dump(exclude={"arch"})), WIDTH)
    encoder.check_sparse_input()
    return NodeClassifier(encoder, 5)


def _loaders(g, sparse, uses_graph):
    cfg = SamplerConfig(fanouts=[4, 3], batch_size=64, prefetch=0)
    seeds = torch.arange(0, 300, 2)
    dense_g = dgl.graph(g.edges(), num_nodes=g.num_nodes())
    dense_g.ndata["feat"] = sparse.to_dense()
    dense_g.ndata["label"] = torch.zeros(g.num_nodes(), dtype=torch.int64)
    sparse_g = dgl.graph(g.edges(), num_nodes=g.num_nodes())
    sparse_g.ndata["label"] = dense_g.ndata["label"]
    common = dict(uses_graph=uses_graph, base_seed=3, device=torch.device("cpu"))
    return (NodeBatchLoader(dense_g, seeds, cfg, **common),
            NodeBatchLoader(sparse_g, seeds, cfg, sparse=sparse, **common))


@pytest.mark.parametrize("arch", SPARSE_ARCHS, ids=IDS)
def test_sparse_batches_give_the_dense_logits_and_gradients(graph_and_features, arch):
    g, sparse = graph_and_features
    model = _model(arch)
    dense_loader, sparse_loader = _loaders(g, sparse, model.encoder.uses_graph)
    batches = 0
    for dense_batch, sparse_batch in zip(dense_loader.epoch(0), sparse_loader.epoch(0)):
        assert sparse_batch.x.layout == torch.sparse_csr
        assert torch.equal(sparse_batch.input_nodes, dense_batch.input_nodes)  # same sampled blocks
        np.testing.assert_array_equal(sparse_batch.x.to_dense().numpy(), dense_batch.x.numpy())
        model.zero_grad()
        dense_logits = model(dense_batch.blocks, dense_batch.x)
        dense_logits.square().sum().backward()
        dense_grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        sparse_logits = model(sparse_batch.blocks, sparse_batch.x)
        sparse_logits.square().sum().backward()
        torch.testing.assert_close(sparse_logits, dense_logits, rtol=1e-4, atol=1e-5)
        for got, want in zip((p.grad for p in model.parameters()), dense_grads):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        batches += 1
    assert batches == 3


@pytest.mark.parametrize("arch", SPARSE_ARCHS, ids=IDS)
def test_layerwise_inference_over_sparse_rows_equals_dense(graph_and_features, arch):
    g, sparse = graph_and_features
    model = _model(arch, seed=1)
    dense = model.input_features(_with_feat(g, sparse.to_dense()))
    assert model.input_features(g, sparse) is sparse
    want, _ = model.inference(g, dense, batch_size=70, device=torch.device("cpu"))
    got, _ = model.inference(g, sparse, batch_size=70, device=torch.device("cpu"))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def _with_feat(g, feat):
    g = dgl.graph(g.edges(), num_nodes=g.num_nodes())
    g.ndata["feat"] = feat
    return g


def test_sparse_projection_equals_dense_linear():
    from largegraph.models.sparse import project

    rows = scipy.sparse.random(30, 50, density=0.1, format="csr", dtype=np.float32, random_state=2)
    x = SparseFeatures.from_scipy(rows).row_range(0, 30)
    linear = torch.nn.Linear(50, 8)
    torch.testing.assert_close(project(x, linear.weight) + linear.bias, linear(torch.from_numpy(rows.toarray())))


def test_input_dropout_drops_stored_values_only(graph_and_features):
    _, sparse = graph_and_features
    from largegraph.models.sparse import dropout_values

    x = sparse.rows(torch.arange(50))
    drop = torch.nn.Dropout(0.5)
    torch.manual_seed(0)
    y = dropout_values(x, drop)
    assert torch.equal(y.crow_indices(), x.crow_indices())
    kept = y.values() != 0
    assert 0 < kept.sum() < len(kept)
    torch.testing.assert_close(y.values()[kept], x.values()[kept] * 2)
    assert dropout_values(x, drop.eval()) is x


@pytest.mark.parametrize("arch, message", [
    ({"arch": "gat", "heads": 4}, "model.arch gat cannot take sparse features"),
    ({"arch": "sage", "aggregator": "pool"}, "model.aggregator pool cannot take sparse features"),
])
def test_encoders_without_a_sparse_first_layer_refuse(arch, message):
    with pytest.raises(ConfigError, match=message) as err:
        _model(arch)
    assert "data.sparse_features=densify" in str(err.value) and "\n" not in str(err.value)
