"""Atomic replacement from a stream: the file is the whole new content or the old one, never a part."""
from __future__ import annotations

import io

import pytest

from largegraph.core.fsutil import atomic_write_from


class BreaksOff(io.RawIOBase):
    """A download that delivers ``good`` bytes and then fails, as a dropped connection does."""

    def __init__(self, good: bytes):
        self.good, self.sent = good, False

    def read(self, size: int = -1) -> bytes:
        if not self.sent:
            self.sent = True
            return self.good
        raise ConnectionResetError("connection reset by peer")


def test_a_stream_replaces_the_file_whole_and_counts_its_bytes(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    payload = bytes(range(256)) * 10_000  # more than one read's worth
    assert atomic_write_from(target, io.BytesIO(payload)) == len(payload)
    assert target.read_bytes() == payload
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_a_copy_that_breaks_off_leaves_the_old_file_and_no_stray_one(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with pytest.raises(ConnectionResetError):
        atomic_write_from(target, BreaksOff(b"partial"))
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
