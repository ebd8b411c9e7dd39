"""Link-prediction data: writer + synthetic generator round-trip through OGB's DglLinkPropPredDataset,
the message-passing graph never holds held-out edges, the real ogbl-ddi loads with its published sizes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SHARED_DATA  # noqa: E402

from largegraph.config import DataConfig
from largegraph.data import load_link_data
from largegraph.data.dataset_format import META_FILE
from largegraph.data.link import LinkData, load_link_dataset
from largegraph.data.ogb_writer import write_link_dataset
from largegraph.data.synthetic import (
    SynthLinkParams,
    generate_link_graph,
    write_synthetic_link_dataset,
)
from largegraph.core.errors import ConfigError, DatasetError

SMALL = SynthLinkParams(num_nodes=1500, avg_degree=8.0, num_communities=4, feat_dim=8, seed=2)


def _keys(src: torch.Tensor, dst: torch.Tensor, n: int) -> set[int]:
    return set((src.to(torch.int64) * n + dst.to(torch.int64)).tolist())


def _directed_keys_of_graph(data: LinkData) -> set[int]:
    src, dst = data.graph.edges()
    return _keys(src, dst, data.num_nodes)


def _positives(part: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    if "edge" in part:
        return part["edge"][:, 0], part["edge"][:, 1]
    return part["source_node"], part["target_node"]


@pytest.mark.parametrize("style", ["edge", "source_target"])
def test_synthetic_link_round_trip(tmp_path, style):
    generated = generate_link_graph(SMALL, style, num_neg=7)
    write_synthetic_link_dataset(tmp_path, "synth-links", SMALL, style, num_neg=7)
    meta = json.loads((tmp_path / "synth_links" / META_FILE).read_text())
    assert meta["task"] == "link" and meta["ogb_meta"]["task type"] == "link prediction"

    data = load_link_dataset("synth-links", tmp_path)
    n = SMALL.num_nodes
    assert data.num_nodes == n and data.split_style == style
    assert data.metric == ("hits@50" if style == "edge" else "mrr")
    assert data.evaluator_name == ("ogbl-collab" if style == "edge" else "ogbl-citation2")
    # Splits come back exactly as generated, as int64 tensors.
    for part in ("train", "valid", "test"):
        assert set(data.split[part]) == set(generated["split"][part])
        for key, arr in generated["split"][part].items():
            got = data.split[part][key]
            assert got.dtype == torch.int64
            np.testing.assert_array_equal(got.numpy(), arr, err_msg=f"{part}/{key}")
    if style == "source_target":
        assert data.split["valid"]["target_node_neg"].shape == (len(data.split["valid"]["source_node"]), 7)
    # Features round-trip exactly (float32 through %.9g).
    assert data.graph.ndata["feat"].dtype == torch.float32
    np.testing.assert_array_equal(data.graph.ndata["feat"].numpy(), generated["feat"])
    # The message-passing graph: train edges in both directions, nothing else; equal to OGB's graph.
    train = generated["edges_train"]
    assert data.graph.num_edges() == 2 * len(train)
    assert data.info["ogb_graph_is_train"] and data.info["inverse_edges_added_by_ogb"]
    graph_keys = _directed_keys_of_graph(data)
    tr = torch.from_numpy(train)
    assert graph_keys == _keys(tr[:, 0], tr[:, 1], n) | _keys(tr[:, 1], tr[:, 0], n)
    # No valid/test positive in either direction.
    for part in ("valid", "test"):
        src, dst = _positives(data.split[part])
        assert not (_keys(src, dst, n) & graph_keys), part
        assert not (_keys(dst, src, n) & graph_keys), part
    # Negatives are never edges of the full graph, nor self-loops.
    all_pos = set()
    for part in ("train", "valid", "test"):
        src, dst = _positives(data.split[part])
        all_pos |= _keys(src, dst, n) | _keys(dst, src, n)
    for part in ("valid", "test"):
        if style == "edge":
            neg = data.split[part]["edge_neg"]
            ns, nd = neg[:, 0], neg[:, 1]
        else:
            negt = data.split[part]["target_node_neg"]
            ns = data.split[part]["source_node"][:, None].expand_as(negt).reshape(-1)
            nd = negt.reshape(-1)
        assert not (_keys(ns, nd, n) & all_pos)
        assert bool((ns != nd).all())


def test_featureless_and_deterministic(tmp_path):
    params = SynthLinkParams(num_nodes=800, avg_degree=6.0, num_communities=3, feat_dim=0, seed=5)
    a = generate_link_graph(params, "edge")
    b = generate_link_graph(params, "edge")
    assert a["feat"] is None
    np.testing.assert_array_equal(a["edges_train"], b["edges_train"])
    np.testing.assert_array_equal(a["split"]["test"]["edge_neg"], b["split"]["test"]["edge_neg"])
    write_synthetic_link_dataset(tmp_path, "bare", params, metric="hits@20")
    data = load_link_dataset("bare", tmp_path)
    assert "feat" not in data.graph.ndata and data.feat_dim == 0
    assert data.metric == "hits@20" and data.evaluator_name == "ogbl-ddi"


def test_evaluator_scores_synthetic_split(tmp_path):
    from ogb.linkproppred import Evaluator

    write_synthetic_link_dataset(tmp_path, "st", SMALL, "source_target", num_neg=5)
    data = load_link_dataset("st", tmp_path)
    valid = data.split["valid"]
    # A perfect scorer: positives 1, negatives 0 -> MRR 1.
    result = Evaluator(data.evaluator_name).eval({
        "y_pred_pos": torch.ones(len(valid["source_node"])),
        "y_pred_neg": torch.zeros(valid["target_node_neg"].shape),
    })
    assert float(result["mrr_list"].mean()) == 1.0


def _simple_split(edges_train: np.ndarray) -> dict:
    return {
        "valid": {"edge": np.array([[0, 5]]), "edge_neg": np.array([[1, 6]])},
        "test": {"edge": np.array([[2, 7]]), "edge_neg": np.array([[3, 8]])},
    }


@pytest.mark.parametrize("change, message", [
    (dict(edges_train=np.array([[0, 1], [-1, 2]])), "outside [0, 10)"),
    (dict(edges_train=np.array([[0, 1], [2, 10]])), "outside [0, 10)"),
    (dict(edges_train=np.zeros((0, 2), dtype=np.int64)), "edges_train is empty"),
    (dict(split={"valid": {"edge": np.array([[0, 5]]), "edge_neg": np.array([[1, 60]])},
                 "test": {"edge": np.array([[2, 7]]), "edge_neg": np.array([[3, 8]])}}), "['edge_neg']"),
    (dict(split={"valid": {"edge": np.array([[0, 1]]), "edge_neg": np.array([[1, 6]])},
                 "test": {"edge": np.array([[2, 7]]), "edge_neg": np.array([[3, 8]])}}), "also training edges"),
    (dict(split={"valid": {"edge": np.array([[0, 5]])},
                 "test": {"edge": np.array([[2, 7]]), "edge_neg": np.array([[3, 8]])}}), "no 'edge_neg'"),
    (dict(metric="hits@7"), "unknown link metric"),
    (dict(metric="mrr"), "needs a source_target-style split"),
])
def test_writer_rejects_bad_inputs(tmp_path, change, message):
    edges = np.array([[0, 1], [1, 2], [3, 4]])
    kwargs = dict(edges_train=edges, num_nodes=10, feat=None, split=_simple_split(edges), split_style="edge",
                  metric="hits@20")
    kwargs.update(change)
    with pytest.raises(DatasetError) as err:
        write_link_dataset(tmp_path, "bad", **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "bad").exists()


def _write_ok(tmp_path) -> Path:
    edges = np.array([[0, 1], [1, 2], [3, 4]])
    return write_link_dataset(tmp_path, "hand", edges_train=edges, num_nodes=10, feat=None,
                              split=_simple_split(edges), split_style="edge", metric="hits@20")


def test_loader_rejects_tampered_splits(tmp_path):
    directory = _write_ok(tmp_path)
    assert load_link_dataset("hand", tmp_path).graph.num_edges() == 6
    split_file = directory / "split" / "largegraph" / "valid.pt"
    torch.save({"edge": torch.tensor([[0, 5]]), "edge_neg": torch.tensor([[-1, 6]])}, split_file)
    with pytest.raises(DatasetError, match=r"valid'\]\['edge_neg'\] holds node ids in \[-1, 6\], outside \[0, 10\)"):
        load_link_dataset("hand", tmp_path)
    torch.save({"edge": torch.zeros((0, 2), dtype=torch.int64)}, directory / "split" / "largegraph" / "train.pt")
    with pytest.raises(DatasetError, match="train split has no edges"):
        load_link_dataset("hand", tmp_path)
    (directory / "split" / "largegraph" / "test.pt").unlink()
    with pytest.raises(DatasetError, match="split file .*test.pt is missing"):
        load_link_dataset("hand", tmp_path)


def test_node_dataset_is_not_a_link_dataset(synth_root):
    with pytest.raises(DatasetError, match="not a link-prediction one"):
        load_link_dataset("tiny", synth_root)


def test_missing_official_dataset_names_directory_and_never_prompts(tmp_path):
    code = ("import sys\nfrom largegraph.data.link import load_link_dataset\n"
            "from largegraph.core.errors import DatasetError\n"
            "try:\n    load_link_dataset('ogbl-collab', sys.argv[1])\n"
            "except DatasetError as e:\n    print('ERR', e)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith("ERR dataset ogbl-collab not found") and "\n" not in line
    assert str(tmp_path / "ogbl_collab") in line
    # Files present but no RELEASE marker: OGB would prompt; we refuse with one line instead.
    (tmp_path / "ogbl_collab" / "raw").mkdir(parents=True)
    (tmp_path / "ogbl_collab" / "raw" / "edge.csv.gz").write_bytes(b"")
    with pytest.raises(DatasetError, match="RELEASE_v1.txt is missing"):
        load_link_dataset("ogbl-collab", tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset 'ogbl-nope'"):
        load_link_dataset("ogbl-nope", tmp_path)


def _assert_twin_layout(data: LinkData, train: np.ndarray) -> None:
    """The link task's layout: edge 2i is training edge i, edge 2i+1 its reverse."""
    src, dst = data.graph.edges()
    assert data.graph.num_edges() == 2 * len(train)
    assert torch.equal(src[0::2], torch.from_numpy(train[:, 0]))
    assert torch.equal(dst[0::2], torch.from_numpy(train[:, 1]))
    assert torch.equal(src[1::2], dst[0::2]) and torch.equal(dst[1::2], src[0::2])


@pytest.mark.parametrize("reverse", ["auto", "true", "false"])
def test_prepare_link_keeps_the_twin_layout_and_normalises_features(tmp_path, reverse):
    generated = generate_link_graph(SMALL, "edge")
    write_synthetic_link_dataset(tmp_path, "prep", SMALL)
    cfg = DataConfig(name="prep", root=str(tmp_path), add_reverse_edges=reverse, feature_norm="row")
    data = load_link_data(cfg)
    # Undirected data already holds both directions: no setting adds or drops any.
    _assert_twin_layout(data, generated["edges_train"])
    assert data.info["undirected"] and data.info["reverse_edges_added"] is False and data.info["self_loops"] is False
    feat = data.graph.ndata["feat"]
    expected = torch.from_numpy(generated["feat"])
    expected = expected / expected.abs().sum(dim=1, keepdim=True)
    assert torch.allclose(feat, expected, atol=1e-6)
    assert torch.allclose(feat.abs().sum(dim=1), torch.ones(SMALL.num_nodes), atol=1e-5)


def test_prepare_link_without_features(tmp_path):
    params = SynthLinkParams(num_nodes=800, avg_degree=6.0, num_communities=3, feat_dim=0, seed=5)
    write_synthetic_link_dataset(tmp_path, "bare", params, metric="hits@20")
    data = load_link_data(DataConfig(name="bare", root=str(tmp_path), feature_norm="standardize"))
    assert "feat" not in data.graph.ndata and data.graph.num_edges() == 2 * len(data.split["train"]["edge"])


def test_prepare_link_refuses_self_loops(tmp_path):
    write_synthetic_link_dataset(tmp_path, "loops", SMALL)
    with pytest.raises(ConfigError) as err:
        load_link_data(DataConfig(name="loops", root=str(tmp_path), self_loops=True))
    message = str(err.value)
    assert "data.self_loops=true" in message and "set data.self_loops=false" in message and "\n" not in message


def test_prepare_directed_link_dataset(tmp_path):
    generated = generate_link_graph(SMALL, "source_target", num_neg=5)
    write_link_dataset(tmp_path, "directed", edges_train=generated["edges_train"], num_nodes=SMALL.num_nodes,
                       feat=generated["feat"], split=generated["split"], split_style="source_target",
                       metric="mrr", directed=True)
    for reverse in ("auto", "false"):
        data = load_link_data(DataConfig(name="directed", root=str(tmp_path), add_reverse_edges=reverse))
        # One edge per training edge, in its own direction: what the task's seeds and exclusion expect.
        assert not data.info["undirected"] and data.info["reverse_edges_added"] is False
        src, dst = data.graph.edges()
        train = generated["edges_train"]
        assert torch.equal(src, torch.from_numpy(train[:, 0])) and torch.equal(dst, torch.from_numpy(train[:, 1]))
    with pytest.raises(ConfigError) as err:
        load_link_data(DataConfig(name="directed", root=str(tmp_path), add_reverse_edges="true"))
    message = str(err.value)
    assert "data.add_reverse_edges=true" in message and "set data.add_reverse_edges=auto" in message
    assert "\n" not in message


def _link_copy(src: Path, dst: Path) -> None:
    """Mirror a read-only dataset: real directories (OGB writes processed/ there), symlinked files."""
    for dirpath, _, files in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for f in files:
            (dst / rel / f).symlink_to(Path(dirpath) / f)


@pytest.mark.skipif(not (SHARED_DATA / "ogbl_ddi").is_dir(),
                    reason=f"real ogbl-ddi not present at {SHARED_DATA / 'ogbl_ddi'}")
def test_real_ogbl_ddi(tmp_path):
    _link_copy(SHARED_DATA / "ogbl_ddi", tmp_path / "ogbl_ddi")
    data = load_link_dataset("ogbl-ddi", tmp_path)
    assert data.num_nodes == 4267
    assert data.split_style == "edge" and data.metric == "hits@20" and data.evaluator_name == "ogbl-ddi"
    sizes = {part: {k: tuple(v.shape) for k, v in d.items()} for part, d in data.split.items()}
    assert sizes == {
        "train": {"edge": (1_067_911, 2)},
        "valid": {"edge": (133_489, 2), "edge_neg": (101_882, 2)},
        "test": {"edge": (133_489, 2), "edge_neg": (95_599, 2)},
    }
    assert 1_067_911 + 2 * 133_489 == 1_334_889
    # OGB's graph = raw/edge.csv.gz with inverse edges interleaved = our train-only graph, exactly.
    assert data.info["official"] and data.info["inverse_edges_added_by_ogb"]
    assert data.info["ogb_graph_edges"] == 2 * 1_067_911 and data.info["ogb_graph_is_train"]
    assert data.graph.num_edges() == 2 * 1_067_911 and "feat" not in data.graph.ndata
    assert data.info["heldout_edges_also_in_train"] == {"valid": 0, "test": 0}
    n = data.num_nodes
    src, dst = data.graph.edges()
    graph_keys = np.unique((src * n + dst).numpy())
    for part in ("valid", "test"):
        e = data.split[part]["edge"]
        for a, b in ((e[:, 0], e[:, 1]), (e[:, 1], e[:, 0])):
            assert not np.isin((a * n + b).numpy(), graph_keys).any()
    from ogb.linkproppred import Evaluator

    assert Evaluator(data.evaluator_name).K == 20
    assert not list((SHARED_DATA / "ogbl_ddi").glob("processed"))  # the shared copy was not written to
