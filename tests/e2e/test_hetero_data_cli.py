"""Typed datasets through the real CLI: `data synth hetero`, a typed `data import` with string ids and a
featureless type, `data inspect` per type, and every bad typed input as one line on stderr, exit 2."""
from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import assert_one_line_error, run_cli, write_config

from largegraph.config import DataConfig
from largegraph.data import HeteroGraphData, HeteroLinkData, load_dataset, load_link_data

USERS = "id,age,score,segment,city\n" + "\n".join(
    f"{name},{20 + i},{i / 10},{['gold', 'silver', 'bronze'][i % 3] if i != 7 else ''},c{i % 2}"
    for i, name in enumerate(["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
                              "ken", "lena"]))
ITEMS = "sku\n" + "\n".join(f"i-{k}" for k in range(6))
FOLLOWS = "src,dst\nalice,bob\nbob,carol\ncarol,alice\ndave,erin\nerin,frank\nfrank,grace\ngrace,heidi\n" \
          "heidi,ivan\nivan,judy\njudy,ken\nken,lena\nlena,alice\nalice,bob\n"
BOUGHT = "user,item\n" + "\n".join(f"{u},i-{k % 6}" for k, u in enumerate(
    ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "ken", "lena"] * 2))


@pytest.fixture(scope="module")
def shop_files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shop")
    for name, text in (("users.csv", USERS), ("items.csv", ITEMS), ("follows.csv", FOLLOWS), ("bought.csv", BOUGHT)):
        (folder / name).write_text(text + "\n")
    return folder


def _import(files: Path, root: Path, *changes: str, name: str = "shop"):
    args = ["data", "import", "--name", name, "--root", root, "--nodes", files / "users.csv:user",
            "--nodes", files / "items.csv:item", "--edges", files / "follows.csv:user:follows:user",
            "--edges", files / "bought.csv:user:bought:item", "--labels", files / "users.csv:segment", *changes]
    return run_cli(*args)


def test_synth_hetero_writes_an_ogbn_mag_shaped_graph_that_inspect_describes_per_type(tmp_path):
    result = run_cli("data", "synth", "hetero", "--name", "mag-like", "--scale", "0.002", "--root", tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "mag_like" / "raw" / "relations" / "author___writes___paper" / "edge.csv.gz").exists()
    shown = run_cli("data", "inspect", tmp_path / "mag_like")
    assert shown.returncode == 0, shown.stderr
    assert "node type paper: 1473 nodes, 128-d features, labels (349 classes), a year per node" in shown.stdout
    assert "node type author: 2269 nodes, no features" in shown.stdout
    assert "relation paper:cites:paper: 10833 edges" in shown.stdout


def test_typed_import_keeps_string_ids_per_type_and_a_featureless_type(tmp_path, shop_files):
    result = _import(shop_files, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "node type item: 6 nodes, no features" in result.stdout
    assert "relation user:follows:user: 12 edges" in result.stdout  # the repeated alice,bob row collapsed
    users = pd.read_csv(tmp_path / "shop" / "mapping" / "user" / "nodeidx2id.csv.gz")
    items = pd.read_csv(tmp_path / "shop" / "mapping" / "item" / "nodeidx2id.csv.gz")
    assert users["id"].tolist()[:3] == ["alice", "bob", "carol"] and items["id"].tolist()[0] == "i-0"
    data = load_dataset(DataConfig(name="shop", root=str(tmp_path)))
    assert isinstance(data, HeteroGraphData) and data.target == "user" and data.num_classes == 3
    assert data.feat_dims == {"item": 0, "user": 2}  # age and score; segment and city are no features
    feat = data.graph.nodes["user"].data["feat"]
    assert torch.equal(feat[users["id"].tolist().index("carol")], torch.tensor([22.0, 0.2]))
    labels = data.graph.nodes["user"].data["label"]
    assert int(labels[users["id"].tolist().index("heidi")]) == -1  # blank: unlabelled
    assert int((labels >= 0).sum()) == sum(len(v) for v in data.split.values())
    link = load_link_data(DataConfig(name="shop", root=str(tmp_path), relation="user:bought:item"))
    assert isinstance(link, HeteroLinkData) and link.target == ("user", "bought", "item")
    shown = run_cli("data", "inspect", tmp_path / "shop")
    assert "node type user: 12 nodes, 2-d features, labels (3 classes)" in shown.stdout, shown.stderr


@pytest.mark.parametrize("changes, needles", [
    ([("follows.csv:user:follows:user", "follows.csv:user:follows:usr")], ["names destination type 'usr'", "user, item"]),
    ([("bought.csv", "bought_bad.csv")], ["destination id 'i-9' is not a item id"]),
    ([("users.csv:segment", "users.csv:shopper:segment")], ["labels on node type 'shopper', which does not exist"]),
    ([("users.csv:segment", "users.csv:tier")], ["no column 'tier'"]),
])
def test_bad_typed_imports_are_one_line_errors(tmp_path, shop_files, changes, needles):
    (shop_files / "bought_bad.csv").write_text(BOUGHT + "\nalice,i-9\n")
    result = _import(shop_files, tmp_path)
    args = [str(a) for a in result.args[3:]]
    for old, new in changes:
        args = [a.replace(old, new) for a in args]
    assert_one_line_error(run_cli(*args), *needles)


@pytest.fixture(scope="module")
def broken_root(tmp_path_factory) -> Path:
    """Typed datasets edited by hand after writing (as a foreign or damaged dataset may be)."""
    root = tmp_path_factory.mktemp("broken")
    for name in ("ids", "types", "good"):
        assert run_cli("data", "synth", "hetero", "--name", name, "--scale", "0.002", "--root", root).returncode == 0
    edges = root / "ids" / "raw" / "relations" / "author___writes___paper" / "edge.csv.gz"
    lines = gzip.open(edges, "rt").read().splitlines()
    lines[5] = "5,99999"
    with gzip.open(edges, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    triplets = root / "types" / "raw" / "triplet-type-list.csv.gz"
    text = gzip.open(triplets, "rt").read().replace("paper,cites,paper", "paper,cites,journal")
    with gzip.open(triplets, "wt") as handle:
        handle.write(text)
    assert run_cli("data", "synth", "node", "--name", "flat", "--nodes", "300", "--classes", "3",
                   "--root", root).returncode == 0
    return root


@pytest.mark.parametrize("name, sections, needles", [
    ("ids", {}, ["relation author:writes:paper holds paper ids in [0, 99999]", "'paper' has 1473 nodes"]),
    ("types", {}, ["relation paper:cites:journal names node type 'journal'"]),
    ("good", {"task": "link_prediction", "data": {"relation": "reviews"}}, ["data.relation 'reviews' is not a relation"]),
    ("flat", {"task": "link_prediction", "data": {"relation": "writes"}}, ["data.relation=writes is for typed datasets"]),
])
def test_bad_typed_datasets_and_relations_are_one_line_errors(tmp_path, broken_root, name, sections, needles):
    data = {"name": name, "root": str(broken_root), **sections.pop("data", {})}
    cfg = write_config(tmp_path / "job.yaml", name, broken_root, data=data, model={"arch": "mlp"}, **sections)
    assert_one_line_error(run_cli("train", cfg, "--run-dir", tmp_path / "run"), *needles)
