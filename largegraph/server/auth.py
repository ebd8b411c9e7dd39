"""Who may talk to ``serve --http``: bearer tokens, the status page's session cookie, and the
cross-site request check.

A token is 256 random bits, shown once by ``largegraph token create`` and stored only as its
SHA-256 digest (a slow password hash buys nothing for random secrets of that size). A request's
token is hashed and compared with every live digest in constant time, so neither a wrong guess nor
the position of a match shows in the response time. Revoking a token takes effect on the next
request: the store is asked every time, nothing is cached.

Browsers sign in with a form; the server then keeps a session (a random id, held in this process's
memory, bound to the token's digest) and puts only the id into an HttpOnly, SameSite=Strict cookie
(script on the page cannot read it; other sites' pages cannot make the browser send it). The
session ends at logout, after a week, when its token is revoked, and when the server restarts. Requests that
change state and arrive with that cookie must also carry ``X-CSRF-Token`` equal to a second,
readable cookie (the double-submit pattern), and must not come from another origin: a forged
cross-site form can set neither. Bearer requests carry no ambient credential, so they need neither.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from largegraph.jobs.store import JobStore
from largegraph.jobs.workspace import Workspace

TOKEN_PREFIX = "lg_"
SESSION_COOKIE = "lg_session"
CSRF_COOKIE = "lg_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_STAMP_EVERY_S = 60.0  # how stale a token's last_used_at may get: stamping is a write to the store
SESSION_S = 7 * 24 * 3600  # a browser signs in again after a week (or at once, if the token is revoked)
MAX_SESSIONS = 10_000      # beyond this, signing in ends the oldest session: memory stays bounded


def new_token() -> str:
    """A fresh random token (shown once; only its digest is stored)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the store keeps of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def match_token(live: list[tuple[str, str]], presented: str) -> str | None:
    """The name of the live token equal to ``presented``, or None.

    Every stored digest is compared, with ``hmac.compare_digest``, whether or not one matched already.
    """
    return match_digest(live, token_digest(presented))


def match_digest(live: list[tuple[str, str]], digest: str) -> str | None:
    """The name of the live token whose digest is ``digest``, or None; compares them all, in
    constant time each."""
    found = None
    for name, stored in live:
        if hmac.compare_digest(stored, digest):
            found = name
    return found


@dataclass(frozen=True)
class Caller:
    """An authenticated request: whose token, and whether it came as the page's cookie."""

    name: str
    via_cookie: bool


class Authenticator:
    """Checks requests against the workspace's live tokens."""

    def __init__(self, workspace: Workspace):
        self.ws = workspace
        self._stamped: dict[str, float] = {}
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[str, float]] = {}  # id -> (token digest, expiry), oldest first

    def open_session(self, token: str) -> str | None:
        """A new session id for a live ``token`` (what the page's cookie holds), or None."""
        if self.token_name(token) is None:
            return None
        session = secrets.token_urlsafe(32)
        with self._lock:
            while len(self._sessions) >= MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[session] = (token_digest(token), time.monotonic() + SESSION_S)
        return session

    def close_session(self, session: str) -> None:
        """End a session (logout): its id is worth nothing from now on."""
        with self._lock:
            self._sessions.pop(session, None)

    def session_name(self, session: str) -> str | None:
        """The name of the live token behind a session, or None (unknown, expired or revoked)."""
        with self._lock:
            digest, expiry = self._sessions.get(session, ("", 0.0))
        if not digest or time.monotonic() > expiry:
            self.close_session(session)
            return None
        with closing(JobStore(self.ws.db_path)) as store:
            found = match_digest(store.live_tokens(), digest)
        if found is None:
            self.close_session(session)  # its token was revoked
        return found

    def token_name(self, presented: str) -> str | None:
        """The live token's name, or None; stamps its last use now and then."""
        if not presented or len(presented) > 256:
            return None
        with closing(JobStore(self.ws.db_path)) as store:
            name = match_token(store.live_tokens(), presented)
            if name is not None and self._due(name):
                store.token_used(name)
        return name

    def _due(self, name: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._stamped.get(name, -_STAMP_EVERY_S) < _STAMP_EVERY_S:
                return False
            self._stamped[name] = now
            return True

    def caller(self, request: Request) -> Caller | None:
        """Who sent ``request`` (bearer header first, then the session cookie); None if nobody valid."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            name = self.token_name(value.strip())
            return Caller(name, via_cookie=False) if name else None
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            name = self.session_name(cookie)
            return Caller(name, via_cookie=True) if name else None
        return None

    def require(self, request: Request) -> Caller:
        """The request's caller; 401 without a valid token, 403 for a cookie request that fails the
        cross-site check."""
        who = request.state.caller if hasattr(request.state, "caller") else self.caller(request)
        if who is None:
            raise HTTPException(401, "missing, unknown or revoked token: send `Authorization: Bearer <token>` "
                                     "(create one with `largegraph token create`)",
                                headers={"WWW-Authenticate": "Bearer"})
        if who.via_cookie and request.method not in SAFE_METHODS:
            check_same_site(request)
        return who


def same_origin(request: Request) -> bool:
    """Whether the browser says the request comes from this server's own pages (or says nothing:
    non-browser clients send neither header)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def check_same_site(request: Request) -> None:
    """403 unless a cookie-authenticated, state-changing request carries the CSRF header matching
    its cookie and comes from this origin."""
    sent = request.headers.get(CSRF_HEADER.lower(), "")
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not (expected and hmac.compare_digest(sent, expected) and same_origin(request)):
        raise HTTPException(403, f"cross-site request refused: a signed-in page must send the {CSRF_HEADER} header")


def new_csrf_value() -> str:
    """The readable cookie's value that the page echoes in ``X-CSRF-Token``."""
    return secrets.token_urlsafe(24)
