"""largegraph.data.node_import: importing a user's edge list, features, labels and split."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import write_file
from largegraph.data import validate
from largegraph.data.node_import import import_node_dataset
from largegraph.data.ogb import load_ogb_node_dataset
from largegraph.core.errors import DatasetError


def replace_in(path, old: str, new: str) -> None:
    write_file(path, path.read_text().replace(old, new))


def edge_set(data):
    src, dst = data.graph.edges()
    return set(zip(src.tolist(), dst.tolist()))


@pytest.fixture
def string_graph(tmp_path):
    """Six nodes with string ids; 'n1'..'n10' sort as strings: n1 < n10 < n2 < n3 < n4 < x."""
    files = {
        "edges": write_file(tmp_path / "edges.csv",
                       "source,target,weight\n"
                       "n2,n1,1\n"
                       "n1,n10,1\n"
                       "n10,n1,1\n"     # same undirected pair as the row above
                       "n3,n3,1\n"      # self-loop
                       "n4,n2,1\n"
                       "n2,n10,1\n"
                       "n3,n4,1\n"),
        "features": write_file(tmp_path / "feat.csv",
                          "id,a,b,c\n"
                          "n1,0.1,1,-2.5\n"
                          "n2,0.2,2,3e-8\n"
                          "n10,0.3,3,7\n"
                          "n3,1e10,4,0\n"
                          "n4,-0.7,5,0.125\n"
                          "x,0.5,6,1\n"),   # x appears only here: an isolated node
        "labels": write_file(tmp_path / "labels.csv",
                        "id,label\n"
                        "n1,cat\n"
                        "n2,dog\n"
                        "n10,cat\n"
                        "n3,bird\n"
                        "n4,\n"          # empty label: unlabelled
                        "x,dog\n"),
    }
    return files


def import_toy(tmp_path, files, **kwargs):
    args = dict(name="toy-graph", root=tmp_path / "root", edges=files["edges"], features=files["features"],
                labels=files["labels"], split_ratios=(0.4, 0.2, 0.4))
    args.update(kwargs)
    return import_node_dataset(**args)


def test_string_ids_labels_and_csv_features_round_trip_through_ogb(tmp_path, string_graph):
    directory = import_toy(tmp_path, string_graph)
    assert directory == tmp_path / "root" / "toy_graph"
    data = load_ogb_node_dataset("toy-graph", tmp_path / "root")
    validate(data)

    order = ["n1", "n10", "n2", "n3", "n4", "x"]  # sorted as strings
    idx = {node: i for i, node in enumerate(order)}
    assert data.num_nodes == 6
    expected_edges = {tuple(sorted((idx[a], idx[b]))) for a, b in
                      [("n2", "n1"), ("n1", "n10"), ("n4", "n2"), ("n2", "n10"), ("n3", "n4")]}
    assert edge_set(data) == expected_edges  # self-loop and duplicate pair dropped, each pair once

    feat = np.array([[0.1, 1, -2.5], [0.3, 3, 7], [0.2, 2, 3e-8], [1e10, 4, 0], [-0.7, 5, 0.125], [0.5, 6, 1]],
                    dtype=np.float32)
    assert data.graph.ndata["feat"].dtype == torch.float32
    assert np.array_equal(data.graph.ndata["feat"].numpy(), feat)

    classes = ["bird", "cat", "dog"]  # sorted label names
    expected = [classes.index(c) if c else -1 for c in ["cat", "cat", "dog", "bird", "", "dog"]]
    assert data.graph.ndata["label"].tolist() == expected
    assert data.num_classes == 3

    node_map = pd.read_csv(directory / "mapping" / "nodeidx2id.csv.gz", dtype={"id": str})
    assert list(node_map.columns) == ["node_idx", "id"]
    assert node_map["id"].tolist() == order and node_map["node_idx"].tolist() == list(range(6))
    label_map = pd.read_csv(directory / "mapping" / "labelidx2label.csv.gz")
    assert label_map.to_dict("list") == {"label_idx": [0, 1, 2], "label": classes}

    # 5 labelled nodes split 2/1/2; the unlabelled n4 is in none of them
    splits = {k: set(v.tolist()) for k, v in data.split.items()}
    assert [len(splits[k]) for k in ("train", "valid", "test")] == [2, 1, 2]
    assert set().union(*splits.values()) == {0, 1, 2, 3, 5}

    info = json.loads((directory / "largegraph.json").read_text())["info"]
    assert info["source"] == "import" and info["edges"] == str(string_graph["edges"])
    assert info["self_loops_dropped"] == 1 and info["duplicate_edges_dropped"] == 1


def test_ratio_split_is_seeded(tmp_path, string_graph):
    def split(seed, root):
        import_toy(tmp_path, string_graph, seed=seed, root=tmp_path / root)
        return {k: v.tolist() for k, v in load_ogb_node_dataset("toy-graph", tmp_path / root).split.items()}

    assert split(3, "a") == split(3, "b")
    assert len({str(split(s, f"s{s}")) for s in range(6)}) > 1


def test_directed_keeps_both_directions(tmp_path, string_graph):
    import_toy(tmp_path, string_graph, directed=True)
    data = load_ogb_node_dataset("toy-graph", tmp_path / "root")
    assert {(0, 1), (1, 0)} <= edge_set(data)  # n1->n10 and n10->n1
    assert data.graph.num_edges() == 7 - 1  # only the self-loop is dropped


def test_integer_ids_sort_numerically_and_keep_integer_labels(tmp_path):
    files = {
        "edges": write_file(tmp_path / "e.csv", "u,v\n100,9\n9,10\n10,100\n"),
        "features": write_file(tmp_path / "f.csv", "id,f\n9,0.9\n10,1.0\n100,10.0\n"),
        "labels": write_file(tmp_path / "l.csv", "id,label\n9,2\n10,0\n100,2\n"),
    }
    directory = import_toy(tmp_path, files, split_ratios=(0.34, 0.33, 0.33))
    data = load_ogb_node_dataset("toy-graph", tmp_path / "root")
    node_map = pd.read_csv(directory / "mapping" / "nodeidx2id.csv.gz")
    assert node_map["id"].tolist() == [9, 10, 100]
    assert data.graph.ndata["feat"][:, 0].tolist() == pytest.approx([0.9, 1.0, 10.0])
    assert data.graph.ndata["label"].tolist() == [2, 0, 2]  # used as-is: class 1 simply has no node
    assert data.num_classes == 3
    assert not (directory / "mapping" / "labelidx2label.csv.gz").exists()


def test_npy_features_row_i_is_node_id_i(tmp_path):
    feat = np.arange(5 * 3, dtype=np.float32).reshape(5, 3) / 7
    np.save(tmp_path / "feat.npy", feat)
    files = {
        "edges": write_file(tmp_path / "e.csv", "src,dst\n0,1\n1,2\n3,1\n"),  # node 4 only has a feature row
        "features": tmp_path / "feat.npy",
        "labels": write_file(tmp_path / "l.csv", "id,label\n0,0\n1,1\n2,0\n3,1\n4,1\n"),
    }
    import_toy(tmp_path, files)
    data = load_ogb_node_dataset("toy-graph", tmp_path / "root")
    assert data.num_nodes == 5
    assert np.array_equal(data.graph.ndata["feat"].numpy(), feat)
    assert edge_set(data) == {(0, 1), (1, 2), (1, 3)}


def test_json_multi_hot_features(tmp_path):
    files = {
        "edges": write_file(tmp_path / "e.csv", "id_1,id_2\n0,1\n1,2\n"),
        "features": write_file(tmp_path / "feat.json", json.dumps({"0": [0, 4], "1": [], "2": [2, 2, 1]})),
        "labels": write_file(tmp_path / "l.csv", "id,label\n0,1\n1,0\n2,1\n"),
    }
    import_toy(tmp_path, files, split_ratios=(0.34, 0.33, 0.33))
    data = load_ogb_node_dataset("toy-graph", tmp_path / "root")
    # multi-hot JSON is stored sparse (tests/unit/data/test_sparse_features.py); densified it reads:
    assert data.sparse_feat.to_dense().tolist() == [[1, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 1, 1, 0, 0]]


def test_split_dir_with_and_without_header(tmp_path, string_graph):
    split_dir = tmp_path / "split"
    split_dir.mkdir()
    write_file(split_dir / "train.csv", "id\nn1\nn2\n")
    write_file(split_dir / "valid.csv", "n10\n")
    write_file(split_dir / "test.csv", "id\nx\n\nn3\n")
    import_toy(tmp_path, string_graph, split_dir=split_dir)
    data = load_ogb_node_dataset("toy-graph", tmp_path / "root")
    assert {k: v.tolist() for k, v in data.split.items()} == {"train": [0, 2], "valid": [1], "test": [5, 3]}


# --------------------------------------------------------------------------------------------- bad input


def split_files(tmp_path, train, valid, test):
    split_dir = tmp_path / "split"
    split_dir.mkdir(exist_ok=True)
    for part, ids in (("train", train), ("valid", valid), ("test", test)):
        write_file(split_dir / f"{part}.csv", "".join(f"{i}\n" for i in ids))
    return split_dir


@pytest.mark.parametrize("change, message", [
    (dict(src_col="from"), "has no column 'from'"),
    (dict(label_col="class"), "has no column 'class'"),
    (dict(id_col="node"), "has no column 'node'"),
    (dict(labels=None), "node classification needs node labels"),
    (dict(structural="pagerank"), "structural features must be one of degree, rw, lap"),
    (dict(split_ratios=(0.5, 0.6, 0.1)), "summing to at most 1"),
])
def test_bad_arguments_name_the_problem(tmp_path, string_graph, change, message):
    with pytest.raises(DatasetError, match=message):
        import_toy(tmp_path, string_graph, **change)
    assert not (tmp_path / "root" / "toy_graph").exists()


def test_missing_file_names_the_path(tmp_path, string_graph):
    with pytest.raises(DatasetError, match=r"edges file .*nope\.csv does not exist"):
        import_toy(tmp_path, string_graph, edges=tmp_path / "nope.csv")


@pytest.mark.parametrize("text, message", [
    ("", r"edges\.csv is empty"),
    ("src,dst\n", "has a header but no edges"),
    ("src,dst\na,b\n,c\n", r"line 3: column 'src' is empty"),
    ("src,dst\na,b,c,d\n", "cannot read edges file .* more fields than the header"),
    ("src,dst\nn1,n2\nn2,n3,n4\n", r"cannot read edges file .*line 3, saw 3"),
])
def test_malformed_edges_file(tmp_path, string_graph, text, message):
    write_file(string_graph["edges"], text)
    with pytest.raises(DatasetError, match=message):
        import_toy(tmp_path, string_graph)


def test_unknown_id_in_split_file(tmp_path, string_graph):
    split_dir = split_files(tmp_path, ["n1", "n2"], ["n10"], ["x", "ghost"])
    with pytest.raises(DatasetError, match=r"test\.csv, line 2: unknown node id 'ghost'"):
        import_toy(tmp_path, string_graph, split_dir=split_dir)


def test_overlapping_split_files(tmp_path, string_graph):
    split_dir = split_files(tmp_path, ["n1", "n2"], ["n10", "n1"], ["x"])
    with pytest.raises(DatasetError, match=r"valid\.csv, line 2: node 'n1' is also in train\.csv"):
        import_toy(tmp_path, string_graph, split_dir=split_dir)


def test_unlabelled_node_in_split_file(tmp_path, string_graph):
    split_dir = split_files(tmp_path, ["n1"], ["n10"], ["n4"])
    with pytest.raises(DatasetError, match="node 'n4' has no label"):
        import_toy(tmp_path, string_graph, split_dir=split_dir)


def test_missing_split_file(tmp_path, string_graph):
    split_dir = split_files(tmp_path, ["n1"], ["n10"], ["x"])
    (split_dir / "valid.csv").unlink()
    with pytest.raises(DatasetError, match=r"valid\.csv is missing"):
        import_toy(tmp_path, string_graph, split_dir=split_dir)


@pytest.mark.parametrize("cell", ["nan", "", "inf"])
def test_nan_or_inf_feature_is_rejected(tmp_path, string_graph, cell):
    replace_in(string_graph["features"], "n3,1e10,4,0", f"n3,1e10,{cell},0")
    with pytest.raises(DatasetError, match=r"1 node\(s\) have NaN, inf or empty feature values \(e\.g\. id 'n3'\)"):
        import_toy(tmp_path, string_graph)


def test_non_numeric_feature_is_rejected(tmp_path, string_graph):
    replace_in(string_graph["features"], "n4,-0.7", "n4,abc")
    with pytest.raises(DatasetError, match=r"line 6: column 'a' has non-numeric value 'abc'"):
        import_toy(tmp_path, string_graph)


def test_nodes_without_feature_rows_are_counted(tmp_path, string_graph):
    lines = string_graph["features"].read_text().splitlines()
    write_file(string_graph["features"], "\n".join(line for line in lines if not line.startswith(("n2,", "n3,"))))
    with pytest.raises(DatasetError, match=r"2 node\(s\) have no row in features file .* \(e\.g\. id 'n2'\)"):
        import_toy(tmp_path, string_graph)


def test_npy_features_need_integer_ids_in_range(tmp_path, string_graph):
    np.save(tmp_path / "feat.npy", np.zeros((6, 2), dtype=np.float32))
    with pytest.raises(DatasetError, match="not all integers"):
        import_toy(tmp_path, string_graph, features=tmp_path / "feat.npy")
    files = {"edges": write_file(tmp_path / "e.csv", "s,d\n0,6\n"), "features": tmp_path / "feat.npy",
             "labels": write_file(tmp_path / "l.csv", "id,label\n0,1\n")}
    with pytest.raises(DatasetError, match=r"node id 6 has no row .* ids must lie in 0\.\.5"):
        import_toy(tmp_path, files)


def test_json_features_must_be_index_lists(tmp_path, string_graph):
    bad = write_file(tmp_path / "feat.json", json.dumps({"n1": [0, -1]}))
    with pytest.raises(DatasetError, match="list of non-negative integer feature indices"):
        import_toy(tmp_path, string_graph, features=bad)


def test_duplicate_label_rows_are_rejected(tmp_path, string_graph):
    write_file(string_graph["labels"], string_graph["labels"].read_text() + "n2,cat\n")
    with pytest.raises(DatasetError, match="lists node 'n2' more than once"):
        import_toy(tmp_path, string_graph)


def test_labels_file_without_any_label(tmp_path, string_graph):
    write_file(string_graph["labels"], "id,label\nn1,\n")
    with pytest.raises(DatasetError, match="labels no node"):
        import_toy(tmp_path, string_graph)
