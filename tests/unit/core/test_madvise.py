"""Kernel advice on mapped arrays: pages of a file mapping can be released and come back intact;
anonymous memory is never touched."""
from __future__ import annotations

import numpy as np
import torch

from largegraph.core.madvise import advise_random, file_mapping, release_pages


def _resident_kb(path: str) -> int:
    total, current = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if not line.rstrip().endswith("kB"):
                current = fields[-1] == path if len(fields) >= 6 else False
            elif current and fields[0] == "Rss:":
                total += int(fields[1])
    return total


def test_released_pages_leave_the_process_and_read_back_the_same(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(4_000_000, dtype=np.float32))
    t = torch.from_numpy(np.load(path, mmap_mode="c"))
    advise_random(t)
    expected = float(t.double().sum())  # faults every page in
    assert file_mapping(t) == str(path) and _resident_kb(str(path)) > 10_000
    assert release_pages(t)
    assert _resident_kb(str(path)) < 1_000
    assert float(t.double().sum()) == expected


def test_anonymous_memory_is_left_alone():
    t = torch.arange(1_000_000, dtype=torch.float32)
    assert file_mapping(t) is None
    assert not release_pages(t)
    assert torch.equal(t, torch.arange(1_000_000, dtype=torch.float32))
