"""Sparse multi-hot features through the real CLI: import, train, predict, and every refusal in one line."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import assert_one_line_error, run_cli

from largegraph.data.dataset_format import NODE_FEAT_SPARSE, RAW_DIR
from largegraph.data.ogb import load_ogb_node_dataset


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """600 users in 3 communities, each with ~8 of 400 'likes', a third of them community-typical."""
    folder = tmp_path_factory.mktemp("social")
    rng = np.random.default_rng(0)
    n, width, classes = 600, 400, 3
    label = rng.integers(0, classes, n)
    src = rng.integers(0, n, 6 * n)
    dst = np.array([rng.choice(np.flatnonzero(label == label[s])) if rng.random() < 0.8 else rng.integers(0, n)
                    for s in src])
    ids = np.array([f"u{i}" for i in range(n)], dtype=object)
    pd.DataFrame({"src": ids[src], "dst": ids[dst]}).to_csv(folder / "edges.csv", index=False)
    pd.DataFrame({"id": ids, "label": [f"c{c}" for c in label]}).to_csv(folder / "labels.csv", index=False)
    likes = {ids[i]: sorted(set((rng.integers(0, 40, 3) + 40 * label[i]).tolist()
                                + rng.integers(0, width, 5).tolist())) for i in range(n)}
    (folder / "likes.json").write_text(json.dumps(likes))
    return folder


def _import(folder, root, *extra):
    return run_cli("data", "import", "--name", "social", "--edges", folder / "edges.csv", "--labels",
                   folder / "labels.csv", "--features", folder / "likes.json", "--split-ratios", "0.6,0.2,0.2",
                   "--root", root, *extra)


@pytest.mark.slow
def test_multi_hot_import_trains_sparse_and_predicts(user_files, tmp_path):
    root = tmp_path / "data"
    result = _import(user_files, root)
    assert result.returncode == 0, result.stderr
    assert "features stored sparse (CSR): 400 columns" in result.stdout
    assert (root / "social" / RAW_DIR / NODE_FEAT_SPARSE).is_file()
    run = tmp_path / "run"
    result = run_cli("train", "configs/social_sage.yaml", "data.name=social", f"data.root={root}", "train.epochs=4",
                     "train.eval_every=2", "--run-dir", run)
    assert result.returncode == 0, result.stderr
    assert "400-d sparse features" in result.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_acc"] > 0.6  # 3 classes: chance is 1/3

    inspect = run_cli("data", "inspect", root / "social")
    assert inspect.returncode == 0, inspect.stderr
    assert "sparse CSR" in inspect.stdout

    # predict's exact layer-wise inference over the sparse rows reproduces the run's own test accuracy
    data = load_ogb_node_dataset("social", root)
    ids = pd.read_csv(root / "social" / "mapping" / "nodeidx2id.csv.gz")["id"].to_numpy()
    pd.DataFrame({"id": ids[data.split["test"].numpy()]}).to_csv(tmp_path / "test_ids.csv", index=False)
    out = tmp_path / "pred.csv"
    result = run_cli("predict", run, "--out", out, "--nodes", tmp_path / "test_ids.csv")
    assert result.returncode == 0, result.stderr
    joined = pd.read_csv(out).merge(pd.read_csv(user_files / "labels.csv"), on="id", how="inner")
    assert len(joined) == len(data.split["test"]) == 120
    assert float((joined["pred"] == joined["label"]).mean()) == pytest.approx(summary["test_acc"], abs=1e-9)


@pytest.mark.slow
def test_sparse_refusals_are_one_line(user_files, tmp_path):
    root = tmp_path / "data"
    assert _import(user_files, root).returncode == 0
    gat = run_cli("train", "configs/social_sage.yaml", "data.name=social", f"data.root={root}", "model.arch=gat",
                  "train.epochs=1")
    assert_one_line_error(gat, "model.arch gat cannot take sparse features", "data.sparse_features=densify")
    standardize = run_cli("train", "configs/social_sage.yaml", "data.name=social", f"data.root={root}",
                          "data.feature_norm=standardize", "train.epochs=1")
    assert_one_line_error(standardize, "standardize would make the sparse features")
    link = run_cli("data", "import", "--task", "link", "--name", "links", "--edges", user_files / "edges.csv",
                   "--features", user_files / "likes.json", "--feature-storage", "sparse", "--root", root)
    assert_one_line_error(link, "--feature-storage sparse is for --task node")
    np.savez(tmp_path / "dense.npz", x=np.ones((3, 3)))
    bad = run_cli("data", "import", "--name", "bad", "--edges", user_files / "edges.csv", "--labels",
                  user_files / "labels.csv", "--features", tmp_path / "dense.npz", "--root", root)
    assert_one_line_error(bad, "as a SciPy sparse matrix")
