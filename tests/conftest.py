"""Shared fixtures: small real datasets written in OGB's layout (helpers live in helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A dataset root holding `tiny` (2k nodes) written by the synthetic generator."""
    from largegraph.data.synthetic import SynthNodeParams, write_synthetic_node_dataset

    root = tmp_path_factory.mktemp("datasets")
    params = SynthNodeParams(num_nodes=2000, avg_degree=10, num_classes=4, feat_dim=16, seed=1)
    write_synthetic_node_dataset(root, "tiny", params, raw_format="csv")
    return root


@pytest.fixture(scope="session")
def link_root(tmp_path_factory) -> Path:
    """The synthetic link graphs: `links` (1.5k nodes, edge split, Hits@K; the job-service tests'),
    `collab-like` (edge split, Hits@K) and `cite-like` (source/target split, MRR)."""
    from largegraph.data.synthetic import SynthLinkParams, write_synthetic_link_dataset

    root = tmp_path_factory.mktemp("links")
    small = SynthLinkParams(num_nodes=1500, avg_degree=8, num_communities=12, feat_dim=8, seed=4)
    write_synthetic_link_dataset(root, "links", small, split_style="edge")
    params = SynthLinkParams(num_nodes=3000, avg_degree=12, num_communities=30, feat_dim=16, homophily=0.9, seed=2)
    write_synthetic_link_dataset(root, "collab-like", params, split_style="edge")
    # The citation2-style acceptance graph: big enough that MRR (100 negatives) measures learning.
    cite = SynthLinkParams(num_nodes=8000, avg_degree=16, num_communities=80, feat_dim=32, homophily=0.9, seed=3)
    write_synthetic_link_dataset(root, "cite-like", cite, split_style="source_target", num_neg=100)
    return root


@pytest.fixture
def ring(tmp_path) -> dict:
    """A 40-node ring with chords as import input files: string ids, labels, and a timestamp per edge
    (the row number)."""
    from helpers import write_file

    n = 40
    rows = [(i, (i + 1) % n) for i in range(n)] + [(i, (i + 7) % n) for i in range(0, n, 2)]
    edges = "src,dst,ts\n" + "".join(f"v{a},v{b},{t}\n" for t, (a, b) in enumerate(rows))
    labels = "id,label\n" + "".join(f"v{i},{'ab'[i % 2]}\n" for i in range(n))
    return {"edges": write_file(tmp_path / "edges.csv", edges), "labels": write_file(tmp_path / "labels.csv", labels),
            "num_edges": len(rows)}


@pytest.fixture()
def own_root(tmp_path) -> Path:
    """A 3,000-node dataset this test may change, its cache not built yet (the session fixtures are
    shared)."""
    from largegraph.data.synthetic import SynthNodeParams, write_synthetic_node_dataset

    params = SynthNodeParams(num_nodes=3000, avg_degree=8, num_classes=4, feat_dim=16, seed=3)
    write_synthetic_node_dataset(tmp_path, "own", params, raw_format="binary")
    return tmp_path


@pytest.fixture(scope="session")
def mag_root(tmp_path_factory) -> Path:
    """A dataset root holding `mag-tiny`: an ogbn-mag-shaped typed graph at scale 0.002 (1,473 papers,
    2,269 authors, 17 institutions, 120 fields of study) in OGB's heterogeneous layout."""
    from largegraph.data.synthetic_hetero import SynthHeteroParams, write_synthetic_hetero_dataset

    root = tmp_path_factory.mktemp("typed")
    write_synthetic_hetero_dataset(root, "mag-tiny", SynthHeteroParams(scale=0.002, seed=3))
    return root


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A private one-node Slurm cluster for the session (tests/slurm_cluster.py); skips where it cannot
    start (not root, Slurm or munge not installed)."""
    from slurm_cluster import SlurmCluster, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with SlurmCluster(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster
