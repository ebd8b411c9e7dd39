"""Features larger than memory: a run limited by a memory cgroup to less than its feature file trains
on mapped features to the same accuracy as an unlimited run, and asking for in-memory features
there is refused in one line before anything loads."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.helpers import run_cli, write_config

MIB = 2**20
LIMIT = 640 * MIB
# 80,000 x 3,000 float32 = 960 MB: 1.5x the limit
NODES, FEAT_DIM = 80_000, 3_000


def _own_memory_cgroup() -> Path | None:
    """This process's cgroup v1 memory folder, if the controller is mounted and writable."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(","):
                folder = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
                return folder if os.access(folder, os.W_OK) else None
    except OSError:
        return None
    return None


@pytest.fixture()
def memory_cgroup():
    """A child memory cgroup limited to LIMIT bytes (removed afterwards), or a skip saying why not."""
    parent = _own_memory_cgroup()
    if parent is None:
        pytest.skip("no writable cgroup v1 memory controller here (needs root and /sys/fs/cgroup/memory)")
    folder = parent / f"largegraph-test-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir()
        (folder / "memory.limit_in_bytes").write_text(str(LIMIT))
    except OSError as exc:
        pytest.skip(f"cannot create a memory cgroup under {parent}: {exc}")
    yield folder
    for pid in (folder / "cgroup.procs").read_text().split():
        os.kill(int(pid), 9)
    folder.rmdir()


def _in_cgroup(folder: Path) -> list[str]:
    """A command prefix that moves the process into ``folder`` before it starts Python."""
    return ["sh", "-c", f'echo $$ > {folder}/cgroup.procs && exec "$0" "$@"']


def _evict(path: Path) -> None:
    """Drop a file's clean pages from the page cache, so the limited run must read them itself
    (pages stay charged to whichever cgroup first read them)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@pytest.mark.slow
def test_mapped_features_train_under_a_limit_smaller_than_the_feature_file(tmp_path, memory_cgroup):
    import subprocess
    import sys

    from tests.helpers import ROOT

    made = run_cli("data", "synth", "node", "--name", "wide", "--nodes", NODES, "--avg-degree", 6,
                   "--classes", 8, "--feat-dim", FEAT_DIM, "--split-ratios", "0.05,0.05,0.9", "--root", tmp_path)
    assert made.returncode == 0, made.stderr
    # No batches sampled ahead: with 3,000-d features each holds ~100 MB of gathered rows, which a
    # 640 MiB limit cannot spare (docs/memory.md says so for users too).
    cfg = write_config(tmp_path / "wide.yaml", "wide", tmp_path, train={"epochs": 1, "validation": "exact"},
                       sampler={"eval_batch_size": 512, "prefetch": 0})
    free = run_cli("train", cfg, "data.features=memory", "--run-dir", tmp_path / "free")
    assert free.returncode == 0, free.stderr
    feat = next((tmp_path / "wide" / "processed").glob("largegraph-*/feat.npy"))
    assert feat.stat().st_size > 1.4 * LIMIT
    _evict(feat)

    def limited(*args: str) -> subprocess.CompletedProcess:
        cmd = [*_in_cgroup(memory_cgroup), sys.executable, "-m", "largegraph", "train", str(cfg), *args]
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900)

    refused = limited("data.features=memory", "--run-dir", str(tmp_path / "refused"))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "set data.features=mmap" in refused.stderr and "Traceback" not in refused.stderr

    run = limited("data.features=mmap", "--run-dir", str(tmp_path / "limited"))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "oom_kill 0" in (memory_cgroup / "memory.oom_control").read_text()
    # the same data and the same seeded computation: the same result, to the last digit printed
    assert run.stdout.strip().splitlines()[-1].split()[:2] == free.stdout.strip().splitlines()[-1].split()[:2]
