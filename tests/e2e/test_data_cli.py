"""The data commands through the CLI: `data import`'s one-line refusals and its closing summary,
`data inspect` before and after the cache is built."""
from __future__ import annotations

import json

from helpers import run_cli, write_file

from largegraph.config import DataConfig
from largegraph.data import load_dataset
from largegraph.data.dataset_format import dataset_dir


def _cli_import(tmp_path, *args):
    return run_cli("data", "import", "--name", "bad", "--root", tmp_path / "r", *map(str, args))


def _one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    return lines[-1]


def test_a_non_numeric_timestamp_is_one_line_naming_the_row(tmp_path):
    edges = write_file(tmp_path / "e.csv", "a,b,when\n1,2,2019\n2,3,soon\n")
    line = _one_line(_cli_import(tmp_path, "--task", "link", "--edges", edges, "--time-col", "when"))
    assert "line 3" in line and "'soon'" in line and "numbers" in line
    assert not (tmp_path / "r" / "bad").exists()


def test_a_time_split_that_comes_out_empty_is_refused(tmp_path):
    edges = write_file(tmp_path / "e.csv", "a,b,t\n" + "".join(f"{i},{i + 1},7\n" for i in range(30)))
    line = _one_line(_cli_import(tmp_path, "--task", "link", "--edges", edges, "--time-col", "t"))
    assert "split empty" in line and "timestamp 7" in line


def test_too_few_edges_for_the_ratios_is_refused(tmp_path):
    edges = write_file(tmp_path / "e.csv", "a,b\n1,2\n2,3\n")
    line = _one_line(_cli_import(tmp_path, "--task", "link", "--edges", edges))
    assert "leave a split empty with 2 edge(s)" in line


def test_link_import_says_what_it_did_with_duplicates_and_self_loops(tmp_path, ring):
    text = ring["edges"].read_text() + "v1,v0,99\nv3,v3,99\n"  # a reversed duplicate and a self-loop
    result = run_cli("data", "import", "--task", "link", "--name", "dup", "--root", tmp_path / "r",
                     "--edges", write_file(tmp_path / "dup.csv", text))
    assert result.returncode == 0, result.stderr
    assert "62 edge rows -> 60 edges: 1 duplicate unordered pairs (either direction) collapsed into one edge, " \
           "1 self-loops dropped" in result.stdout


def test_an_edge_id_missing_from_the_features_file_is_named(tmp_path, ring):
    feats = write_file(tmp_path / "f.csv", "id,x\n" + "".join(f"v{i},{i}\n" for i in range(39)))  # no v39
    line = _one_line(_cli_import(tmp_path, "--task", "link", "--edges", ring["edges"], "--features", feats))
    assert "'v39'" in line and "no row in features file" in line


def test_labels_with_a_link_import_are_refused(tmp_path, ring):
    line = _one_line(_cli_import(tmp_path, "--task", "link", "--edges", ring["edges"], "--labels", ring["labels"]))
    assert "--labels is for --task node" in line


def test_inspect_reports_the_cache_and_per_worker_figures(own_root):
    directory = dataset_dir(own_root, "own")
    before = run_cli("data", "inspect", directory, "--nproc", "4")
    assert before.returncode == 0, before.stderr
    assert "not built yet" in before.stdout and "mmap with 4 local worker(s)" in before.stdout
    load_dataset(DataConfig(name="own", root=str(own_root)))
    after = run_cli("data", "inspect", directory, "--json")
    figures = json.loads(after.stdout)
    assert figures["exact"] and figures["num_nodes"] == 3000 and figures["feat_dim"] == 16
    missing = run_cli("data", "inspect", own_root / "nope")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr
