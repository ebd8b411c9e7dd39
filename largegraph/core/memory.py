"""How much memory this process can still use: the kernel's MemAvailable capped by its memory
cgroup's limit (v1 or v2). Light on purpose (no torch, no numpy): the allocator reads it at start-up.
psutil reads MemAvailable; it knows nothing of cgroups, whose files are read here."""
from __future__ import annotations

from pathlib import Path

import psutil


def available_memory() -> int:
    """Bytes this process can still use: the kernel's MemAvailable, capped by the memory limit of
    this process's cgroup (v1 or v2) less what the cgroup already uses for anything but page cache."""
    available = psutil.virtual_memory().available
    limit, used = _cgroup_memory()
    if limit is not None:
        available = min(available, max(0, limit - used))
    return available


def _cgroup_memory() -> tuple[int | None, int]:
    """(limit, non-cache usage) of this process's memory cgroup; (None, 0) without a limit."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None, 0
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            return _cgroup_numbers(base / "memory.limit_in_bytes", base / "memory.usage_in_bytes",
                                   base / "memory.stat", "total_cache")
        if controllers == "":
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
            return _cgroup_numbers(base / "memory.max", base / "memory.current", base / "memory.stat", "file")
    return None, 0


def _cgroup_numbers(limit_file: Path, usage_file: Path, stat_file: Path, cache_key: str) -> tuple[int | None, int]:
    try:
        text = limit_file.read_text().strip()
        limit = None if text == "max" or int(text) >= 1 << 60 else int(text)
        used = int(usage_file.read_text())
        stat = dict(line.split() for line in stat_file.read_text().splitlines() if line.count(" ") == 1)
        used -= int(stat.get(cache_key, 0))
    except (OSError, ValueError):
        return None, 0
    return limit, max(0, used)
