"""predict and embed on typed runs write each node type's own ids: the labelled type's classes under its
ids, every type's embeddings under its ids with a ``type`` column."""
from __future__ import annotations

import pandas as pd
import pytest
from helpers import run_cli, write_config
from test_hetero_data_cli import _import, shop_files  # noqa: F401  (the shop CSVs, a fixture)

USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "ken", "lena"]
ITEMS = [f"i-{k}" for k in range(6)]
SMALL = {"sampler": {"fanouts": [-1, -1], "batch_size": 4, "eval_batch_size": 8},
         "model": {"arch": "rgcn", "hidden": 8, "num_layers": 2}, "train": {"epochs": 1, "lr": 0.01}}


@pytest.fixture(scope="module")
def shop_root(tmp_path_factory, shop_files):  # noqa: F811
    root = tmp_path_factory.mktemp("shop-root")
    result = _import(shop_files, root)
    assert result.returncode == 0, result.stderr
    return root


def _train(tmp_path, root, **sections):
    cfg = write_config(tmp_path / "job.yaml", "shop", root, **{**SMALL, **sections})
    result = run_cli("train", cfg, "--run-dir", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    return tmp_path / "run"


def test_predict_on_a_typed_node_run_writes_the_labelled_types_ids_and_class_names(tmp_path, shop_root):
    run = _train(tmp_path, shop_root)
    out = run_cli("predict", run, "--out", tmp_path / "segments.csv")
    assert out.returncode == 0, out.stderr[-2000:]
    table = pd.read_csv(tmp_path / "segments.csv")
    assert table["id"].tolist() == USERS
    assert set(table["pred"]) <= {"gold", "silver", "bronze"}
    assert {"prob_gold", "prob_silver", "prob_bronze"} <= set(table.columns)
    some = run_cli("predict", run, "--out", tmp_path / "two.csv", "--nodes", _ids(tmp_path, ["carol", "alice"]))
    assert some.returncode == 0, some.stderr[-2000:]
    assert pd.read_csv(tmp_path / "two.csv")["id"].tolist() == ["carol", "alice"]


def test_embed_on_a_typed_link_run_writes_every_type_under_its_own_ids(tmp_path, shop_root):
    run = _train(tmp_path, shop_root, task="link_prediction", data={"relation": "bought"})
    out = run_cli("embed", run, "--out", tmp_path / "embeddings.parquet")
    assert out.returncode == 0, out.stderr[-2000:]
    table = pd.read_parquet(tmp_path / "embeddings.parquet")
    assert table[table["type"] == "item"]["id"].tolist() == ITEMS
    assert table[table["type"] == "user"]["id"].tolist() == USERS
    assert [c for c in table.columns if c.startswith("e")] == [f"e{j}" for j in range(8)]
    assert table.filter(like="e").notna().all().all()
    npy = run_cli("embed", run, "--out", tmp_path / "embeddings.npy")
    assert npy.returncode == 0, npy.stderr[-2000:]
    ids = pd.read_csv(tmp_path / "embeddings.ids.csv")
    assert ids.values.tolist() == table[["type", "id"]].values.tolist()
    refused = run_cli("embed", run, "--out", tmp_path / "x.csv", "--nodes", _ids(tmp_path, ["alice"]))
    assert refused.returncode == 2 and "every type" in refused.stderr


def _ids(tmp_path, ids: list[str]):
    path = tmp_path / "nodes.csv"
    path.write_text("id\n" + "\n".join(ids) + "\n")
    return path
