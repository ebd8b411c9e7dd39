"""The one way largegraph replaces a file: write a temporary sibling, fsync it, rename it over the
target, fsync the directory. A reader (or a crash at any instant) sees the old file or the whole new
one, never half of either."""
from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

TMP_MARK = ".tmp-"  # leftovers of interrupted writes are named ``.<name>.tmp-<pid>``


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | Path) -> None:
    """Make a file that another writer (pyarrow, a memory map) filled durable."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def write_synced(path: str | Path, write: Callable[[BinaryIO], None], durable: bool = True) -> None:
    """Create ``path`` with what ``write`` puts into the open file, then fsync it (unless not
    ``durable``). Not atomic by itself: for files inside a directory that is swapped in whole."""
    with open(path, "wb") as handle:
        write(handle)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())


def atomic_write_from(path: str | Path, source: BinaryIO, durable: bool = True) -> int:
    """Replace ``path`` with what ``source`` holds (read to its end in pieces) atomically: a failed
    or interrupted copy leaves ``path`` as it was. Returns the number of bytes written."""
    written = 0

    def copy(handle: BinaryIO) -> None:
        nonlocal written
        while chunk := source.read(1 << 20):
            handle.write(chunk)
            written += len(chunk)

    _replace_with(Path(path), copy, durable)
    return written


@contextlib.contextmanager
def replacing(path: str | Path, durable: bool = True) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write (and fsync) inside the block; it replaces ``path``
    when the block ends, or is removed if the block raises, leaving ``path`` as it was."""
    path = Path(path)
    # Unique per thread too: `serve --http` queues a job's config on a request thread while the
    # daemon's thread may be rewriting the same file before starting it.
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{threading.get_ident()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def _replace_with(path: Path, write: Callable[[BinaryIO], None], durable: bool) -> None:
    with replacing(path, durable) as tmp:
        write_synced(tmp, write, durable)


def atomic_write_bytes(path: str | Path, payload: bytes, durable: bool = True) -> None:
    """Replace ``path`` with ``payload`` atomically.

    Args:
        durable: fsync the file and its directory (what checkpoints, records and caches need);
            False skips both for files rewritten every few seconds (a heartbeat) whose loss in a
            power cut costs nothing.
    """
    _replace_with(Path(path), lambda handle: handle.write(payload), durable)


def atomic_write_text(path: str | Path, text: str, durable: bool = True) -> None:
    """:func:`atomic_write_bytes` for text (UTF-8)."""
    atomic_write_bytes(path, text.encode(), durable)


def remove_leftovers(directory: Path) -> None:
    """Delete temporary files that interrupted atomic writes left in ``directory``."""
    for tmp in Path(directory).glob(f".*{TMP_MARK}*"):
        tmp.unlink(missing_ok=True)


def mirror_with_symlinks(src: str | Path, dst: str | Path) -> Path:
    """``dst`` as a tree of directories whose files are symlinks into ``src``.

    OGB writes its processed cache beside a dataset's raw files; a read-only release (a shared
    mount) is made loadable this way without copying it.
    """
    src, dst = Path(src).resolve(), Path(dst)
    for path in src.rglob("*"):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    return dst
