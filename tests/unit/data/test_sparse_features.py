"""Sparse node features: stored sparse at import, read back through OGB's loader and the processed cache."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch

from largegraph.config import DataConfig
from largegraph.data import load_dataset
from largegraph.data.cache import read_manifest
from largegraph.data.node_import import import_node_dataset
from largegraph.data.footprint import from_manifest
from largegraph.data.dataset_format import NODE_FEAT_CSV, NODE_FEAT_SPARSE, RAW_DIR
from largegraph.data.ogb import load_ogb_node_dataset
from largegraph.data.sparse import SparseFeatures
from largegraph.core.errors import ConfigError, DatasetError


def _files(tmp_path, n=120, width=40, active=3, seed=0):
    """A random graph with string ids, multi-hot JSON features and labels; returns (files, dense features
    in node order: ids sort as v000, v001...)."""
    rng = np.random.default_rng(seed)
    ids = [f"v{i:03d}" for i in range(n)]
    edges = rng.integers(0, n, (4 * n, 2))
    (tmp_path / "edges.csv").write_text("src,dst\n" + "".join(f"{ids[a]},{ids[b]}\n" for a, b in edges))
    (tmp_path / "labels.csv").write_text("id,label\n" + "".join(f"{v},{i % 3}\n" for i, v in enumerate(ids)))
    dense = np.zeros((n, width), dtype=np.float32)
    lists = {}
    for i, v in enumerate(ids):
        cols = rng.integers(0, width, active).tolist()
        lists[v] = cols + cols[:1]  # a repeated index is still one active feature
        dense[i, cols] = 1.0
    dense[:, width - 1] = np.maximum(dense[:, width - 1], 1.0)  # the width is the largest index + 1
    for i, v in enumerate(ids):
        lists[v].append(width - 1)
    (tmp_path / "feat.json").write_text(json.dumps(lists))
    return {"edges": tmp_path / "edges.csv", "labels": tmp_path / "labels.csv", "features": tmp_path / "feat.json"}, dense


def test_json_multi_hot_is_stored_sparse_and_read_back(tmp_path):
    files, dense = _files(tmp_path)
    directory = import_node_dataset(name="multi", root=tmp_path / "root", **files)
    meta = json.loads((directory / "largegraph.json").read_text())
    assert meta["feature_storage"] == "sparse" and meta["feat_dim"] == dense.shape[1]
    assert meta["feat_nnz"] == int((dense != 0).sum())
    assert meta["ogb_meta"]["has_node_attr"] == "False"
    assert (directory / RAW_DIR / NODE_FEAT_SPARSE).is_file() and not (directory / RAW_DIR / NODE_FEAT_CSV).exists()
    stored = scipy.sparse.load_npz(directory / RAW_DIR / NODE_FEAT_SPARSE)  # documented: SciPy's own format
    np.testing.assert_array_equal(stored.toarray(), dense)

    data = load_ogb_node_dataset("multi", tmp_path / "root")
    assert "feat" not in data.graph.ndata and data.feat_dim == dense.shape[1]
    np.testing.assert_array_equal(data.sparse_feat.to_dense().numpy(), dense)


def test_dense_storage_on_request_and_sparse_for_csv(tmp_path):
    files, dense = _files(tmp_path)
    import_node_dataset(name="as-dense", root=tmp_path / "root", feature_storage="dense", **files)
    data = load_ogb_node_dataset("as-dense", tmp_path / "root")
    assert data.sparse_feat is None
    np.testing.assert_array_equal(data.graph.ndata["feat"].numpy(), dense)

    ids = [f"v{i:03d}" for i in range(len(dense))]
    header = "id," + ",".join(f"c{j}" for j in range(dense.shape[1]))
    rows = [f"{v}," + ",".join(f"{x:g}" for x in row) for v, row in zip(ids, dense)]
    (tmp_path / "feat.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    import_node_dataset(name="csv-sparse", root=tmp_path / "root", feature_storage="sparse",
                        **{**files, "features": tmp_path / "feat.csv"})
    data = load_ogb_node_dataset("csv-sparse", tmp_path / "root")
    np.testing.assert_array_equal(data.sparse_feat.to_dense().numpy(), dense)


def test_sparse_npz_features_with_structural_columns(tmp_path):
    rng = np.random.default_rng(3)
    n = 50
    matrix = scipy.sparse.random(n, 30, density=0.1, format="csr", dtype=np.float32, random_state=4)
    scipy.sparse.save_npz(tmp_path / "feat.npz", matrix)
    (tmp_path / "e.csv").write_text("a,b\n" + "".join(f"{a},{b}\n" for a, b in rng.integers(0, n, (150, 2))))
    (tmp_path / "l.csv").write_text("id,label\n" + "".join(f"{i},{i % 2}\n" for i in range(n)))
    import_node_dataset(name="npz", root=tmp_path / "root", edges=tmp_path / "e.csv", labels=tmp_path / "l.csv",
                        features=tmp_path / "feat.npz", structural="degree")
    data = load_ogb_node_dataset("npz", tmp_path / "root")
    got = data.sparse_feat.to_dense().numpy()
    assert got.shape == (n, 31)
    np.testing.assert_allclose(got[:, :30], matrix.toarray())
    assert (got[:, 30] > 0).sum() > 0  # log-degree joined the stored columns


def test_processed_cache_round_trip_maps_csr_and_counts_true_bytes(tmp_path):
    files, dense = _files(tmp_path, n=200, width=300)
    import_node_dataset(name="multi", root=tmp_path / "root", **files)
    cfg = DataConfig(name="multi", root=str(tmp_path / "root"), features="mmap", feature_norm="row")
    first = load_dataset(cfg)   # built from OGB's load
    again = load_dataset(cfg)   # mapped from the cache
    folder = again.info["cache"]
    assert first.info["cache"] == folder
    manifest = read_manifest(Path(folder))
    assert {"feat_indptr", "feat_indices", "feat_values"} <= set(manifest["arrays"]) and "feat" not in manifest["arrays"]
    expected = dense / dense.sum(1, keepdims=True)  # feature_norm row on the stored values
    np.testing.assert_allclose(again.sparse_feat.to_dense().numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(first.sparse_feat.to_dense().numpy(), again.sparse_feat.to_dense().numpy())
    fp = from_manifest(manifest)
    nnz = int((dense != 0).sum())
    assert fp.sparse and fp.feat_dim == 300
    assert fp.features == (200 + 1) * 8 + nnz * 4 + nnz * 4 == again.sparse_feat.nbytes
    assert fp.features < dense.nbytes / 10

    densified = load_dataset(DataConfig(name="multi", root=str(tmp_path / "root"), sparse_features="densify"))
    assert densified.sparse_feat is None and densified.info["cache"] != folder
    np.testing.assert_array_equal(densified.graph.ndata["feat"].numpy(), dense)


def test_half_precision_values_and_standardize_refused(tmp_path):
    files, dense = _files(tmp_path)
    import_node_dataset(name="multi", root=tmp_path / "root", **files)
    data = load_dataset(DataConfig(name="multi", root=str(tmp_path / "root"), feature_dtype="bfloat16"))
    assert data.sparse_feat.values.dtype == torch.bfloat16
    np.testing.assert_array_equal(data.sparse_feat.to_dense().numpy(), dense)  # 0/1 are exact in bfloat16
    with pytest.raises(ConfigError, match="standardize would make the sparse features"):
        load_dataset(DataConfig(name="multi", root=str(tmp_path / "root"), feature_norm="standardize"))


def test_row_gather_matches_dense_rows():
    rng = np.random.default_rng(5)
    dense = scipy.sparse.random(40, 25, density=0.2, format="csr", dtype=np.float32, random_state=6).toarray()
    dense[7] = 0  # an empty row
    matrix = scipy.sparse.csr_matrix(dense)
    sparse = SparseFeatures.from_scipy(matrix)
    ids = torch.as_tensor(rng.integers(0, 40, 60))
    ids[0] = 7
    rows = sparse.rows(ids)
    assert rows.layout == torch.sparse_csr
    np.testing.assert_array_equal(rows.to_dense().numpy(), matrix.toarray()[ids.numpy()])
    np.testing.assert_array_equal(sparse[5:19].to_dense().numpy(), matrix.toarray()[5:19])


def test_bad_sparse_files_are_one_line(tmp_path):
    files, _ = _files(tmp_path)
    np.savez(tmp_path / "dense.npz", a=np.zeros((3, 3)))
    with pytest.raises(DatasetError, match="as a SciPy sparse matrix") as err:
        import_node_dataset(name="bad", root=tmp_path / "root", **{**files, "features": tmp_path / "dense.npz"})
    assert "\n" not in str(err.value)
    nan = scipy.sparse.csr_matrix(np.array([[0, np.nan], [1, 0]], dtype=np.float32))
    scipy.sparse.save_npz(tmp_path / "nan.npz", nan)
    (tmp_path / "e2.csv").write_text("a,b\n0,1\n")
    (tmp_path / "l2.csv").write_text("id,label\n0,0\n1,1\n")
    with pytest.raises(DatasetError, match="NaN, inf"):
        import_node_dataset(name="bad", root=tmp_path / "root", edges=tmp_path / "e2.csv",
                            labels=tmp_path / "l2.csv", features=tmp_path / "nan.npz", split_ratios=(0.5, 0.25, 0.25))
