"""The ASGI app of ``serve --http``: API and pages, one error shape, a cap on request bodies,
security headers on every response."""
from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from largegraph.core.errors import LargeGraphError
from largegraph.jobs.progress import RunFileRefused
from largegraph.jobs.store import JobConflict, NoSuchJob, QueueFull, StoreBusy
from largegraph.server.auth import Authenticator
from largegraph.server.limits import TooDeep, check_json_depth
from largegraph.server.settings import ServerSettings

log = logging.getLogger("largegraph.server")

# A page may run only its own scripts and styles and talk only to this server: nothing from a CDN,
# no inline script, not framed by other sites. Referrer policy same-origin, not no-referrer: under
# no-referrer browsers send `Origin: null` with form posts, which the cross-site check must refuse.
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_HEADERS = [(b"content-security-policy", _CSP.encode()), (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY"),
            (b"cache-control", b"no-store")]


class BodyLimit:
    """Answers 413 to a request body larger than ``limit`` bytes, declared or streamed, before the
    app reads it whole."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            return await _too_large(send, self.limit)
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _BodyTooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _BodyTooLarge:
            if not started:
                await _too_large(send, self.limit)


class _BodyTooLarge(Exception):
    pass


class AuthFirst:
    """Under ``/v1``: refuses a request without a valid token before its body is read, then reads
    the (capped) body once and refuses one nested too deeply for the JSON parser, before the app
    parses it. The caller found is left in the request's state for the routes' dependency."""

    def __init__(self, app: ASGIApp, auth: Authenticator):
        self.app, self.auth = app, auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        from anyio import to_thread

        who = await to_thread.run_sync(self.auth.caller, Request(scope))
        if who is None:
            return await _send(send, error(401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"}))
        scope.setdefault("state", {})["caller"] = who
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):  # a body trickled in slowly holds a worker
                body = await _whole_body(receive)
        except TimeoutError:
            return await _send(send, error(408, f"request body not received within {BODY_TIMEOUT_S:.0f} s"))
        try:
            check_json_depth(body)
        except TooDeep as exc:
            return await _send(send, error(400, str(exc)))
        replayed = False

        async def again() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, again, send)


BODY_TIMEOUT_S = 30.0
UNAUTHORIZED = ("missing, unknown or revoked token: send `Authorization: Bearer <token>` "
                "(create one with `largegraph token create`)")


async def _whole_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(parts)
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def _send(send: Send, response: JSONResponse) -> None:
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


async def _too_large(send: Send, limit: int) -> None:
    body = JSONResponse({"error": f"request body larger than {limit} bytes (serve --max-body)"}, 413)
    await send({"type": "http.response.start", "status": 413, "headers": body.raw_headers + _HEADERS})
    await send({"type": "http.response.body", "body": body.body})


class SecurityHeaders:
    """Adds the security headers to every response."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + _HEADERS}
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    """The one shape of every error the API answers: ``{"error": "<one line>"}``."""
    return JSONResponse({"error": message}, status, headers=headers)


def _install_errors(app: FastAPI) -> None:
    statuses = ((NoSuchJob, 404), (RunFileRefused, 404), (JobConflict, 409), (QueueFull, 429), (StoreBusy, 503),
                (LargeGraphError, 400))
    for kind, status in statuses:
        app.add_exception_handler(kind, lambda _r, exc, status=status: error(status, str(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        return error(422, f"{where}: {first.get('msg', 'invalid')}{more}")

    @app.exception_handler(RecursionError)
    async def too_deep(request: Request, _exc: RecursionError) -> JSONResponse:
        # A backstop behind the depth checks: one line in the log, never a traceback.
        log.warning("%s %s: input nested too deeply", request.method, request.url.path)
        return error(400, "input nested too deeply")

    @app.exception_handler(Exception)
    async def crashed(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return error(500, f"internal error ({type(exc).__name__}); see the server's log")


def create_app(settings: ServerSettings) -> ASGIApp:
    """The whole app: ``/healthz``, the API under ``/v1`` and the status page."""
    from largegraph.server import api, pages

    app = FastAPI(title="largegraph job service", version="1", openapi_url=None, docs_url=None, redoc_url=None,
                  description="Submit, watch and cancel training jobs of one largegraph workspace. Every route "
                              "but /healthz needs `Authorization: Bearer <token>` (`largegraph token create`).")
    app.state.settings = settings
    app.state.auth = Authenticator(settings.workspace)
    _install_errors(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        """Liveness: answers without a token and says nothing about jobs."""
        return {"status": "ok"}

    app.include_router(api.router)
    app.include_router(pages.router)
    return SecurityHeaders(BodyLimit(AuthFirst(app, app.state.auth), settings.max_body))
