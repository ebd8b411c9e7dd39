"""The status page: a sign-in form, the job list and a job page, served as static files by the same
process as the API. The pages' script (``static/app.js``) reads everything through the API with
the session cookie; no page carries job data in its HTML and nothing comes from outside the server.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from largegraph.server.auth import (CSRF_COOKIE, SESSION_COOKIE, SESSION_S, Caller, check_same_site,
                                    new_csrf_value, same_origin)

STATIC = Path(__file__).with_name("static")
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}

router = APIRouter(include_in_schema=False)


def _signed_in(request: Request) -> Caller | None:
    return request.app.state.auth.caller(request)


def _page(request: Request) -> Response:
    """The page for a signed-in browser (its script shows the list or a job, as the address says);
    others are sent to the sign-in form."""
    if _signed_in(request) is None:
        return RedirectResponse("/login", 303)
    return FileResponse(STATIC / "page.html", media_type="text/html; charset=utf-8")


@router.get("/")
def job_list(request: Request) -> Response:
    return _page(request)


@router.get("/jobs/{ref}")
def job_page(ref: str, request: Request) -> Response:
    return _page(request)


@router.get("/static/{file}")
def asset(file: str, request: Request) -> Response:
    if file not in ASSETS:
        return Response(status_code=404)
    if file != "style.css":  # the sign-in form's look is all that is served before signing in
        request.app.state.auth.require(request)
    return FileResponse(STATIC / file, media_type=ASSETS[file])


@router.get("/login")
def login_form() -> Response:
    return _login_page("")


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the token from the form, open a session for it and keep the session's id (never the
    token) in an HttpOnly, SameSite=Strict cookie."""
    if not same_origin(request):
        return _login_page("Sign-in refused: the form was not sent from this server's page.", 403)
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (fields.get("token") or [""])[0].strip()
    session = await _open_session(request, token)
    if session is None:
        return _login_page("Unknown or revoked token.", 401)
    secure = request.app.state.settings.secure_cookies
    response = RedirectResponse("/", 303)
    response.set_cookie(SESSION_COOKIE, session, max_age=SESSION_S, httponly=True, samesite="strict", secure=secure)
    # Readable by the page's script, which echoes it in X-CSRF-Token (see largegraph.server.auth).
    response.set_cookie(CSRF_COOKIE, new_csrf_value(), max_age=SESSION_S, httponly=False, samesite="strict",
                        secure=secure)
    return response


async def _open_session(request: Request, token: str) -> str | None:
    from anyio import to_thread

    return await to_thread.run_sync(request.app.state.auth.open_session, token)


@router.post("/logout")
def logout(request: Request) -> Response:
    check_same_site(request)
    request.app.state.auth.close_session(request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", 303)
    for cookie in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(cookie, samesite="strict")
    return response


def _login_page(message: str, status: int = 200) -> HTMLResponse:
    # The message is one of this module's fixed strings, never request text.
    html = (STATIC / "login.html").read_text().replace("{{message}}", message)
    return HTMLResponse(html, status)
