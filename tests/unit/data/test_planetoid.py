"""largegraph.data.planetoid: the real Cora (Planetoid release) converted and read back through OGB's loader."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from helpers import SHARED_DATA  # noqa: E402

from largegraph.data import validate
from largegraph.data.ogb import load_ogb_node_dataset
from largegraph.data.planetoid import convert_planetoid
from largegraph.core.errors import DatasetError

CORA = SHARED_DATA / "planetoid_cora"
needs_cora = pytest.mark.skipif(not (CORA / "ind.cora.graph").is_file(),
                                reason=f"the Planetoid Cora release is not at {CORA} (../shared/data/planetoid_cora)")


@pytest.fixture(scope="module")
def cora(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    directory = convert_planetoid(CORA, root)
    return directory, load_ogb_node_dataset("cora", root)


@pytest.fixture
def data(cora):
    """The converted Cora as OGB's loader reads it."""
    return cora[1]


@needs_cora
def test_cora_sizes_match_the_planetoid_release(cora):
    directory, data = cora
    validate(data)
    assert data.num_nodes == 2708
    assert data.graph.num_edges() == 5278  # each undirected edge once; OGB adds no inverse edges
    assert data.feat_dim == 1433
    assert data.num_classes == 7
    assert [len(data.split[k]) for k in ("train", "valid", "test")] == [140, 500, 1000]
    info = json.loads((directory / "largegraph.json").read_text())["info"]
    assert info["source"] == "planetoid"


@needs_cora
def test_cora_public_split_and_labels(data):
    labels = data.graph.ndata["label"]
    assert data.split["train"].tolist() == list(range(140))
    assert data.split["valid"].tolist() == list(range(140, 640))
    assert data.split["test"].min() == 1708 and data.split["test"].max() == 2707
    assert torch.bincount(labels[data.split["train"]], minlength=7).tolist() == [20] * 7
    # Cora's class sizes: every node is labelled
    assert torch.bincount(labels, minlength=7).tolist() == [351, 217, 418, 818, 426, 298, 180]


@needs_cora
def test_cora_edges_are_unique_undirected_without_self_loops(data):
    src, dst = (t.numpy() for t in data.graph.edges())
    assert (src != dst).all()
    pairs = np.unique(np.stack([np.minimum(src, dst), np.maximum(src, dst)], axis=1), axis=0)
    assert len(pairs) == len(src) == 5278


@needs_cora
def test_cora_features_are_raw_binary_bag_of_words_with_test_rows_reordered(data):
    import pickle
    import warnings

    feat = data.graph.ndata["feat"]
    assert set(torch.unique(feat).tolist()) == {0.0, 1.0}
    assert int(feat.sum()) == 49216
    # test row i of tx belongs to node test.index[i], not to node len(allx) + i
    test_index = [int(line) for line in (CORA / "ind.cora.test.index").read_text().split()]
    with open(CORA / "ind.cora.tx", "rb") as handle, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tx = pickle.load(handle, encoding="latin1").toarray()
    assert test_index[0] != 1708
    assert np.array_equal(feat[test_index].numpy(), tx)


@needs_cora
def test_missing_planetoid_file_says_where_it_is_expected(tmp_path):
    src = tmp_path / "cora"
    shutil.copytree(CORA, src)
    (src / "ind.cora.tx").unlink()
    with pytest.raises(DatasetError, match=r"missing in .*: ind\.cora\.tx"):
        convert_planetoid(src, tmp_path / "root")


def test_missing_planetoid_dir_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match=r"does not exist; expected the release files ind\.cora\."):
        convert_planetoid(tmp_path / "absent", tmp_path / "root")


def test_corrupt_pickle_is_a_dataset_error(tmp_path):
    for key in ("x", "y", "allx", "ally", "tx", "ty", "graph", "test.index"):
        (tmp_path / f"ind.cora.{key}").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match=r"cannot read Planetoid file .*ind\.cora\.x"):
        convert_planetoid(tmp_path, tmp_path / "root")
