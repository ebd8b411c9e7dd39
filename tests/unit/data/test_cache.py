"""The processed-graph cache: bit-for-bit equal to OGB's load, never trusted when stale or damaged,
built once under concurrent first loads, and mapped (one copy of the pages) by every process."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from largegraph.config import DataConfig
from largegraph.data import cache, footprint, load_dataset, load_link_data, validate
from largegraph.data.dataset_format import GRAPH_CACHE_PREFIX, dataset_dir
from largegraph.data.link import load_link_dataset
from largegraph.data.ogb import load_ogb_node_dataset
from largegraph.data.prepare import prepare
from largegraph.data.synthetic import SynthNodeParams, write_synthetic_node_dataset
from largegraph.core.errors import ResourceError

from tests.helpers import ROOT


def _cfg(root: Path, name: str = "own", **kw) -> DataConfig:
    return DataConfig(name=name, root=str(root), **kw)


def _caches(root: Path, name: str = "own") -> list[Path]:
    return sorted((dataset_dir(root, name) / "processed").glob(f"{GRAPH_CACHE_PREFIX}*"))


def _uncached_node(cfg: DataConfig):
    data = load_ogb_node_dataset(cfg.name, cfg.root)
    validate(data)
    return prepare(data, cfg)


@pytest.mark.parametrize("options", [{}, {"self_loops": True, "feature_norm": "standardize"},
                                     {"add_reverse_edges": "false"}])
def test_node_cache_equals_the_ogb_load_bit_for_bit(synth_root, options):
    cfg = _cfg(synth_root, "tiny", **options)
    expected = _uncached_node(cfg)
    for _ in range(2):  # the load that builds the cache, then one that maps it
        got = load_dataset(cfg)
        for a, b in zip(expected.graph.adj_tensors("csc")[:2], got.graph.adj_tensors("csc")[:2]):
            assert torch.equal(a, b)
        assert torch.equal(expected.graph.ndata["feat"], got.graph.ndata["feat"])
        assert torch.equal(expected.graph.ndata["label"], got.graph.ndata["label"])
        assert all(torch.equal(expected.split[p], got.split[p]) for p in expected.split)
        assert (got.num_classes, got.metric, got.evaluator_name) == (expected.num_classes, expected.metric,
                                                                       expected.evaluator_name)
        assert got.graph.formats()["created"] == ["csc"] and got.info["cache"]


def test_link_cache_keeps_edge_ids_and_split(link_root):
    cfg = _cfg(link_root, "links")
    expected = prepare(load_link_dataset("links", link_root), cfg)
    got = load_link_data(cfg)
    eids = torch.arange(expected.graph.num_edges())
    # the reverse-edge pairing (edge 2i+1 reverses 2i) lives in the edge ids: they must survive
    for a, b in zip(expected.graph.find_edges(eids), got.graph.find_edges(eids)):
        assert torch.equal(a, b)
    for part, keys in expected.split.items():
        assert all(torch.equal(keys[k], got.split[part][k]) for k in keys)
    assert (got.split_style, got.metric, got.num_nodes) == (expected.split_style, expected.metric, expected.num_nodes)


def test_settings_get_their_own_cache_and_loads_reuse_it(own_root):
    load_dataset(_cfg(own_root))
    load_dataset(_cfg(own_root, feature_norm="row"))
    first = _caches(own_root)
    assert len(first) == 2
    stamp = {p: p.stat().st_mtime_ns for p in first}
    load_dataset(_cfg(own_root, features="mmap"))  # how features are read is not part of the key
    assert {p: p.stat().st_mtime_ns for p in _caches(own_root)} == stamp


def test_a_changed_raw_file_makes_a_new_cache_and_drops_the_stale_one(own_root):
    before = load_dataset(_cfg(own_root))
    old = _caches(own_root)
    params = SynthNodeParams(num_nodes=2500, avg_degree=8, num_classes=4, feat_dim=16, seed=4)
    write_synthetic_node_dataset(own_root, "own", params, raw_format="binary")
    after = load_dataset(_cfg(own_root))
    assert after.num_nodes == 2500 != before.num_nodes
    assert len(_caches(own_root)) == 1 and _caches(own_root) != old


@pytest.mark.parametrize("damage", ["truncate", "no_manifest", "bad_manifest"])
def test_a_damaged_cache_is_rebuilt_not_trusted(own_root, damage):
    import gc

    first = load_dataset(_cfg(own_root))
    indices, feat = first.graph.adj_tensors("csc")[1].clone(), first.graph.ndata["feat"].clone()
    # Truncating a file that this process still maps would fault its pages (SIGBUS): largegraph
    # never rewrites a cache file in place (it builds a new folder and renames it in), but an
    # outside hand can.
    del first
    gc.collect()
    folder = _caches(own_root)[0]
    if damage == "truncate":
        with open(folder / "indices.npy", "r+b") as handle:
            handle.truncate(os.path.getsize(folder / "indices.npy") // 2)
    elif damage == "no_manifest":
        (folder / "manifest.json").unlink()
    else:
        (folder / "manifest.json").write_text("{not json")
    assert cache.read_manifest(folder) is None
    got = load_dataset(_cfg(own_root))
    assert cache.read_manifest(folder) is not None
    assert torch.equal(got.graph.adj_tensors("csc")[1], indices)
    assert torch.equal(got.graph.ndata["feat"], feat)


_LOADER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from largegraph.config import DataConfig
    from largegraph.data import load_dataset
    root, go, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    while not go.exists():  # both processes start their first load at the same moment
        time.sleep(0.005)
    data = load_dataset(DataConfig(name="own", root=root, features=mode))
    total = float(data.graph.ndata["feat"].double().sum()) + int(data.graph.adj_tensors("csc")[1].sum())
    print(f"ready {total!r}", flush=True)
    sys.stdin.read()  # held open until the test has looked at /proc
""")


def _start_loaders(root: Path, go: Path, mode: str, count: int = 2) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", _LOADER, str(root), str(go), mode], cwd=ROOT, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(count)]


def _finish(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.stdin.close()
        proc.wait(timeout=120)
        assert proc.returncode == 0, proc.stderr.read()


def test_two_concurrent_first_loads_make_one_valid_cache(own_root, tmp_path):
    go = tmp_path / "go"
    procs = _start_loaders(own_root, go, "memory")
    go.touch()
    lines = [proc.stdout.readline().strip() for proc in procs]
    _finish(procs)
    assert lines[0].startswith("ready") and lines[0] == lines[1]
    folders = list((dataset_dir(own_root, "own") / "processed").iterdir())
    built = [f for f in folders if f.name.startswith(GRAPH_CACHE_PREFIX)]
    assert len(built) == 1 and cache.read_manifest(built[0]) is not None
    assert not [f for f in folders if ".tmp-" in f.name]


def _mapping_stats(pid: int, file: Path) -> dict[str, int]:
    """Summed smaps fields (kB) of every mapping of ``file`` in process ``pid``."""
    stats: dict[str, int] = {}
    current = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and "-" in fields[0] and ":" in fields[3]:  # a mapping's header line
            current = fields[-1] == str(file)
        elif current and line.endswith("kB"):
            stats[fields[0].rstrip(":")] = stats.get(fields[0].rstrip(":"), 0) + int(fields[1])
    return stats


def test_processes_map_the_same_pages_of_topology_and_features(own_root, tmp_path):
    folder, _, _ = cache.ensure_cache(dataset_dir(own_root, "own"), "node", _cfg(own_root),
                                      lambda: _uncached_node(_cfg(own_root)))
    go = tmp_path / "go"
    go.touch()
    procs = _start_loaders(own_root, go, "mmap")
    try:
        assert all(proc.stdout.readline().startswith("ready") for proc in procs)
        for name in ("feat", "indices"):
            file = (folder / f"{name}.npy").resolve()
            for proc in procs:
                stats = _mapping_stats(proc.pid, file)
                # every page resident in both processes is one page of the page cache: shared, and
                # each process's proportional share is half of what it maps
                assert stats.get("Rss", 0) > 0, (name, stats)
                assert stats["Shared_Clean"] == stats["Rss"] and stats.get("Private_Dirty", 0) == 0
                assert stats["Pss"] <= stats["Rss"] * 0.55
    finally:
        _finish(procs)


def test_memory_mode_reads_a_private_copy_and_mmap_maps_the_file(own_root):
    import gc

    data = load_dataset(_cfg(own_root, features="memory"))
    gc.collect()  # the manifest check's header reads are closed maps
    feat_file = (Path(data.info["cache"]) / "feat.npy").resolve()
    assert _mapping_stats(os.getpid(), feat_file) == {}
    mapped = load_dataset(_cfg(own_root, features="mmap"))
    assert torch.equal(mapped.graph.ndata["feat"], data.graph.ndata["feat"])
    assert _mapping_stats(os.getpid(), feat_file).get("Rss", 0) > 0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_reduced_precision_storage_halves_the_bytes(own_root, dtype):
    full = load_dataset(_cfg(own_root))
    half = load_dataset(_cfg(own_root, feature_dtype=dtype))
    assert half.graph.ndata["feat"].dtype == getattr(torch, dtype)
    sizes = [os.path.getsize(Path(d.info["cache"]) / "feat.npy") for d in (full, half)]
    assert sizes[1] < sizes[0] * 0.51
    assert torch.allclose(half.graph.ndata["feat"].float(), full.graph.ndata["feat"], rtol=1e-2, atol=1e-2)


def test_inspect_estimate_is_within_ten_percent_of_the_cache(own_root):
    directory = dataset_dir(own_root, "own")
    for options in ({}, {"feature_dtype": "float16"}, {"self_loops": True}):
        cfg = _cfg(own_root, **options)
        guess = footprint.estimate(directory, "node", cfg)
        data = load_dataset(cfg)
        folder = Path(data.info["cache"])
        measured = {"topology": sum(os.path.getsize(folder / f"{n}.npy") for n in ("indptr", "indices")),
                    "features": os.path.getsize(folder / "feat.npy"),
                    "labels": os.path.getsize(folder / "label.npy")}
        for part, size in measured.items():
            assert abs(getattr(guess, part) - size) <= 0.1 * size, (options, part, getattr(guess, part), size)
        exact = footprint.from_manifest(cache.read_manifest(folder))
        assert exact.exact and abs(exact.features - measured["features"]) <= 0.1 * measured["features"]


def test_the_refusal_names_what_would_fit():
    fp = footprint.Footprint(10, 100, 4, topology=1000, features=8000, labels=80, build_peak=50_000, exact=True)
    with pytest.raises(ResourceError, match="set data.features=mmap"):
        footprint.check_fits("g", fp, "memory", 2, available=10_000, building=False)
    footprint.check_fits("g", fp, "mmap", 2, available=10_000, building=False)  # mapped features may exceed RAM
    with pytest.raises(ResourceError, match="first load"):
        footprint.check_fits("g", fp, "mmap", 1, available=10_000, building=True)
    cfg = DataConfig(name="g")
    assert footprint.features_mode(cfg, fp, 2, available=10**9) == "mmap"  # several local workers share
    assert footprint.features_mode(cfg, fp, 1, available=10**9) == "memory"
    assert footprint.features_mode(cfg, fp, 1, available=12_000) == "mmap"  # over half of what is free
    big = replace(fp, features=footprint.MAP_FROM_BYTES)
    assert footprint.features_mode(cfg, big, 1, available=10**12) == "mmap"  # large: dropped after layer 0
