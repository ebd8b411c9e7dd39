"""Every bad input through the real CLI: one line on stderr, exit code 2, no traceback."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_line_error, run_cli, write_config

from largegraph.data.ogb_writer import write_node_dataset


def bad_dataset(root: Path, name: str, **change) -> None:
    rng = np.random.default_rng(0)
    n = 60
    arrays = dict(edges=rng.integers(0, n, (200, 2)), num_nodes=n, feat=rng.normal(size=(n, 4)),
                  labels=rng.integers(0, 3, n), num_classes=3,
                  split={"train": np.arange(0, 30), "valid": np.arange(30, 45), "test": np.arange(45, 60)})
    arrays.update(change)
    write_node_dataset(root, name, raw_format="csv", **arrays)


@pytest.fixture(scope="module")
def bad_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    labels = np.random.default_rng(1).integers(0, 3, 60)
    labels[3] = 7
    bad_dataset(root, "label-range", labels=labels, num_classes=8)
    # Our writer refuses such labels, so shrink the class count behind its back, as a hand-edited
    # or foreign dataset might.
    meta_path = root / "label_range" / "largegraph.json"
    meta = json.loads(meta_path.read_text())
    meta["ogb_meta"]["num classes"] = "3"
    meta_path.write_text(json.dumps(meta))
    feat = np.random.default_rng(2).normal(size=(60, 4))
    feat[10, 2] = np.nan
    bad_dataset(root, "nan-feat", feat=feat)
    bad_dataset(root, "inf-feat", feat=np.where(np.eye(60, 4) > 0, np.inf, 0.0))
    bad_dataset(root, "empty-split", split={"train": np.arange(30), "valid": np.arange(30, 45),
                                            "test": np.array([], dtype=np.int64)})
    bad_dataset(root, "overlap", split={"train": np.arange(0, 30), "valid": np.arange(25, 45),
                                        "test": np.arange(45, 60)})
    bad_dataset(root, "out-of-range", split={"train": np.arange(0, 30), "valid": np.arange(30, 45),
                                             "test": np.arange(45, 70)})
    return root


@pytest.mark.parametrize("name, needles", [
    ("label-range", ["label 7 of node 3", "out of range [0, 3)"]),
    ("nan-feat", ["NaN or inf", "node 10"]),
    ("inf-feat", ["NaN or inf"]),
    ("empty-split", ["test split is empty"]),
    ("overlap", ["valid split overlaps"]),
    ("out-of-range", ["test split has node ids outside [0, 60)"]),
])
def test_bad_dataset_contents(tmp_path, bad_root, name, needles):
    cfg = write_config(tmp_path / "job.yaml", name, bad_root)
    assert_one_line_error(run_cli("train", cfg, "--run-dir", tmp_path / "run"), *needles)


def test_unknown_dataset_name(tmp_path, synth_root):
    cfg = write_config(tmp_path / "job.yaml", "no-such-graph", synth_root)
    assert_one_line_error(run_cli("train", cfg), "unknown dataset 'no-such-graph'", "largegraph data synth node")


def test_missing_root(tmp_path):
    cfg = write_config(tmp_path / "job.yaml", "tiny", tmp_path / "nowhere")
    assert_one_line_error(run_cli("train", cfg), "data.root", "does not exist")


def test_official_ogb_name_without_files_says_where_to_put_them(tmp_path):
    cfg = write_config(tmp_path / "job.yaml", "ogbn-arxiv", tmp_path)
    assert_one_line_error(run_cli("train", cfg), "dataset ogbn-arxiv not found", str(tmp_path / "ogbn_arxiv"),
                          "arxiv.zip")


def test_official_ogb_dir_without_release_marker_never_prompts(tmp_path):
    (tmp_path / "ogbn_arxiv" / "raw").mkdir(parents=True)
    (tmp_path / "ogbn_arxiv" / "raw" / "edge.csv.gz").write_bytes(b"")
    cfg = write_config(tmp_path / "job.yaml", "ogbn-arxiv", tmp_path)
    assert_one_line_error(run_cli("train", cfg), "RELEASE_v1.txt is missing")


@pytest.mark.parametrize("override, needle", [
    ("sampler.fanouts=[5]", "sampler.fanouts has 1 entries but model.num_layers is 2"),
    ("model.hiden=64", "model.hiden: unknown key"),
    ("train.lr=-1", "train.lr: Input should be greater than 0"),
    ("model.arch=gat", None),  # valid: the control case
])
def test_config_errors_name_the_key(tmp_path, synth_root, override, needle):
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root, train={"epochs": 1})
    result = run_cli("train", cfg, override, "--run-dir", tmp_path / "run")
    if needle is None:
        assert result.returncode == 0, result.stderr
    else:
        assert_one_line_error(result, needle)


def test_missing_config_file_and_bad_arguments(tmp_path):
    assert_one_line_error(run_cli("train", tmp_path / "nope.yaml"), "does not exist")
    assert_one_line_error(run_cli("train"), "the following arguments are required: config")
    assert_one_line_error(run_cli("data", "synth", "node", "--name", "x", "--nodes", "ten"), "invalid int value")
    assert_one_line_error(run_cli("report", tmp_path), "no metrics.jsonl")


def test_cuda_requested_without_gpu_says_what_to_do(tmp_path, synth_root):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root)
    assert_one_line_error(run_cli("train", cfg, "--device", "cuda"), "no CUDA GPU", "--device cpu")


def test_bad_synth_parameters(tmp_path):
    result = run_cli("data", "synth", "node", "--name", "x", "--nodes", "1000", "--homophily", "1.5",
                     "--root", tmp_path)
    assert_one_line_error(result, "--homophily")
    assert not (tmp_path / "x").exists()


def test_import_own_graph_through_the_cli_then_train(tmp_path):
    (tmp_path / "edges.csv").write_text("follower,followee\n" + "".join(
        f"u{i},u{(i * 7 + 3) % 40}\n" for i in range(40)))
    (tmp_path / "labels.csv").write_text("id,label\n" + "".join(
        f"u{i},{'bot' if i % 2 else 'human'}\n" for i in range(40)))
    (tmp_path / "feats.csv").write_text("id,a,b\n" + "".join(f"u{i},{i % 2},{i / 40}\n" for i in range(40)))
    ok = run_cli("data", "import", "--name", "social", "--edges", tmp_path / "edges.csv", "--features",
                 tmp_path / "feats.csv", "--labels", tmp_path / "labels.csv", "--root", tmp_path / "data")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "data" / "social" / "mapping" / "labelidx2label.csv.gz").exists()
    cfg = write_config(tmp_path / "job.yaml", "social", tmp_path / "data", train={"epochs": 1},
                       sampler={"fanouts": [3, 3], "batch_size": 8})
    assert run_cli("train", cfg, "--run-dir", tmp_path / "run").returncode == 0

    bad = run_cli("data", "import", "--name", "x", "--edges", tmp_path / "edges.csv", "--labels",
                  tmp_path / "labels.csv", "--label-col", "class", "--features", tmp_path / "feats.csv",
                  "--root", tmp_path / "data")
    assert_one_line_error(bad, "class")
