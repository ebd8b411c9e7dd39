"""Sampling ahead of compute: a background thread fills a bounded queue of batches.

DGL's samplers, its ``to_block`` and torch's gathers run in C++ without the GIL, so a thread that
samples batch *b+1* (and gathers its features) while the trainer computes batch *b* overlaps the two
within one process: no worker processes, no copies of every batch through ``/dev/shm``. Batches
stay a function of ``(seed, epoch, batch)`` because each one is still sampled on one OpenMP thread,
re-seeded in the thread that samples it (see :mod:`largegraph.sampling.samplers`); the thread only
changes *when* a batch is made, never *what* it holds.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetched(items: Iterator[T], depth: int) -> Iterator[T]:
    """Yield ``items`` in order while a daemon thread produces up to ``depth`` of them ahead.

    An exception in the producer is raised in the consumer at the item where it happened. A
    consumer that stops early (``break``, an exception, a checkpoint-and-stop) closes this
    generator, which stops the producer after the item it is making and joins it.
    """
    if depth <= 0:
        yield from items
        return
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failure(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # the producer's own generator is closed in the thread that runs it

    thread = threading.Thread(target=produce, name="largegraph-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                ready.get(timeout=0.1)  # unblock a producer waiting for room
            except queue.Empty:
                pass
        thread.join()
