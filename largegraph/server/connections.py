"""What one client connection may cost ``serve --http``: a bounded time to send its request head,
and a bounded number of such unfinished connections per client address.

uvicorn's HTTP/1.1 protocol (h11) gives a connection all the time it likes before its first request
and resets its keep-alive timer on every byte, and its ``limit_concurrency`` counts those idle
connections: a few hundred sockets that send nothing, or a header line now and then, answer every
other client 503. This subclass of uvicorn's own protocol (chosen over a second server or a proxy:
it is the same, well-kept HTTP code, with two rules added where uvicorn has its hooks) closes a
connection whose request head is not complete within :data:`HEAD_TIMEOUT_S` of when it could start,
and, when one address holds more than :data:`MAX_PENDING` such connections, closes its oldest one
rather than refusing the newest (so a client's fresh request always gets through).
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT_S = 10.0  # from connecting (or the last response) to a complete request head
MAX_PENDING = 32       # connections of one address that have not yet sent a complete head


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on the request head and a per-address cap on
    connections still sending one (evicting the oldest)."""

    head_timeout_s = HEAD_TIMEOUT_S
    max_pending = MAX_PENDING
    # address -> its connections without a complete head, oldest first (the event loop's thread only)
    _pending: dict[str, OrderedDict] = {}

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._settled()
        super().connection_lost(exc)

    def _address(self) -> str:
        return self.client[0] if self.client else "?"

    def _watch(self) -> None:
        """Track whether this connection is waiting for a request head, and act on the rules."""
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            self._settled()
            return
        mine = self._pending.setdefault(self._address(), OrderedDict())
        if self in mine:
            return
        mine[self] = None
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._too_slow)
        while len(mine) > self.max_pending:
            oldest = next(iter(mine))
            oldest._drop()

    def _settled(self) -> None:
        """No longer waiting for a head (it came, or the connection ends)."""
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        mine = self._pending.get(self._address())
        if mine is not None:
            mine.pop(self, None)
            if not mine:
                del self._pending[self._address()]

    def _too_slow(self) -> None:
        self._head_timer = None
        self._drop()

    def _drop(self) -> None:
        """End the connection now: ``abort``, not ``close``, since a TLS close waits for the peer's
        reply, and a peer that reads nothing would keep its place for the shutdown timeout."""
        self._settled()
        self.transport.abort()
