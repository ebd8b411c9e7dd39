"""The remote CLI: `submit`, `status`, `logs` and `cancel` through a `serve --http`, with the same
output and exit codes as on the server's own machine.

The standard library's HTTP client is enough for four JSON calls and one streamed log, so the CLI
needs nothing beyond what the package already installs. Every failure is one line: the server's
own error for a refused request (bad config, unknown job), or what is wrong with the connection.
"""
from __future__ import annotations

import argparse
import json
import os
import ssl
import time
import urllib.error
import urllib.request
from http.client import HTTPException, HTTPResponse
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode, urlsplit

from largegraph.core.errors import EXIT_OK, JobError
from largegraph.jobs.store import NoSuchJob
from largegraph.jobs.submission import SubmitOptions
from largegraph.jobs.workspace import NAME_PATTERN
from largegraph.server.cli import CA_ENV, SERVER_ENV, TOKEN_ENV

TIMEOUT_S = 60.0        # for one call; a followed log has none (a quiet job sends nothing for a while)
RECONNECT_S = 60.0      # how long `logs --follow` keeps trying when the server goes away mid-stream


class RemoteError(JobError):
    """The server could not be reached or refused the request."""


def client_for(args: argparse.Namespace) -> "ApiClient | None":
    """An API client when a server is named (``--server`` or ``$LARGEGRAPH_SERVER``), else None."""
    url = getattr(args, "server", None) or os.environ.get(SERVER_ENV)
    if not url:
        return None
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise RemoteError(f"talking to {url} needs a token: set {TOKEN_ENV} (made on the server with "
                          "`largegraph token create --name YOU`)")
    return ApiClient(url, token, getattr(args, "cacert", None) or os.environ.get(CA_ENV))


def _ref_path(ref: str) -> str:
    if not (ref.isdigit() or NAME_PATTERN.match(ref)):
        raise NoSuchJob(f"no job named {ref!r}: job names are 1-64 letters, digits, '_', '.' or '-'")
    return quote(ref, safe="")


class ApiClient:
    """Calls of the job API on one server with one token."""

    def __init__(self, url: str, token: str, cafile: str | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RemoteError(f"server {url!r} must be an http:// or https:// address, e.g. https://gpu-node:8470")
        self.base = url.rstrip("/")
        self.token = token
        self.context = None
        if parts.scheme == "https":
            try:
                self.context = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as exc:
                raise RemoteError(f"cannot read CA certificate {cafile}: {exc}") from None

    # --- plumbing ----------------------------------------------------------------------------------
    def _open(self, method: str, path: str, body: dict | None = None,
              timeout: float | None = TIMEOUT_S) -> HTTPResponse:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Accept": "application/json",
            **({"Content-Type": "application/json"} if data is not None else {})})
        try:
            return urllib.request.urlopen(request, timeout=timeout, context=self.context)
        except urllib.error.HTTPError as exc:
            raise self._refused(exc) from None
        except (urllib.error.URLError, OSError, HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            hint = (f"; trust its certificate with --cacert or ${CA_ENV}" if isinstance(reason, ssl.SSLError)
                    else "; is `largegraph serve --http` running there?")
            raise RemoteError(f"cannot reach server {self.base}: {reason}{hint}") from None

    def _refused(self, exc: urllib.error.HTTPError) -> JobError:
        try:
            message = json.loads(exc.read() or b"{}").get("error") or exc.reason
        except (ValueError, AttributeError, OSError):
            message = exc.reason
        message = " ".join(str(message).split())  # one line, whatever the server said
        if exc.code == 401:
            return RemoteError(f"server {self.base} refused the token ({message.split(':')[0]}); check "
                               f"${TOKEN_ENV}, or create one on the server with `largegraph token create`")
        if exc.code == 404 and message.startswith("no job"):
            return NoSuchJob(message)
        if 400 <= exc.code < 500:
            return JobError(message)
        return RemoteError(f"server {self.base} failed ({exc.code}): {message}")

    def _json(self, method: str, path: str, body: dict | None = None) -> dict:
        with self._open(method, path, body) as response:
            return json.loads(response.read())

    # --- calls -------------------------------------------------------------------------------------
    def submit(self, config: str, overrides: list[str], options: SubmitOptions) -> dict:
        """Queue a job from a local YAML file; returns its record. The file is checked for being
        there and being YAML here, with `submit`'s messages; the server validates the rest."""
        from largegraph.config import read_yaml

        read_yaml(config)
        body = {"config": Path(config).read_text(), "overrides": list(overrides), "source": str(config),
                "name": options.name, "priority": options.priority, "retries": options.retries,
                "nproc": options.nproc, "device": options.device, "max_restarts": options.max_restarts}
        return self._json("POST", "/v1/jobs", body)["job"]

    def jobs(self, refs: list[str]) -> list[dict]:
        """Records of the named jobs (all jobs if none are named)."""
        query = urlencode([("name", ref) for ref in refs])
        for ref in refs:
            _ref_path(ref)
        return self._json("GET", "/v1/jobs" + (f"?{query}" if query else ""))["jobs"]

    def job(self, ref: str | int) -> dict:
        """One job's record."""
        return self._json("GET", f"/v1/jobs/{_ref_path(str(ref))}")["job"]

    def cancel(self, ref: str) -> dict:
        """Cancel a job; returns its record after the request."""
        return self._json("POST", f"/v1/jobs/{_ref_path(ref)}/cancel")["job"]

    def fetch(self, ref: str, name: str, out: Path) -> int:
        """Download one file of the job's run directory to ``out`` (replaced only once it is whole);
        returns its size."""
        from largegraph.core.fsutil import atomic_write_from

        with self._open("GET", f"/v1/jobs/{_ref_path(ref)}/artifacts/{quote(name, safe='')}") as response:
            try:
                return atomic_write_from(out, response)
            except (OSError, HTTPException) as exc:
                raise RemoteError(f"download of {name} from {self.base} broke off: {exc}") from None

    def logs(self, ref: str, follow: bool, out: BinaryIO) -> int:
        """Copy the job's log to ``out``; with ``follow``, keep copying until the job ends."""
        path = f"/v1/jobs/{_ref_path(ref)}/logs"
        if follow:
            self._follow(path, ref, out)
            return EXIT_OK
        offset = 0
        while True:
            with self._open("GET", f"{path}?offset={offset}") as response:
                data = response.read()
                state, size = response.headers["X-Job-State"], int(response.headers["X-Log-Size"])
            out.write(data)
            out.flush()
            offset += len(data)
            if not data or offset >= size:
                break
        if offset == 0 and state not in ("succeeded", "failed", "cancelled"):
            from largegraph.jobs.cli import no_output_yet

            no_output_yet(self.job(ref)["name"], state)
        return EXIT_OK

    def _follow(self, path: str, ref: str, out: BinaryIO) -> None:
        """Stream the log; if the server goes away before the job ends (a restart), pick up again
        from the last byte received."""
        offset, lost_at = 0, None
        while True:
            try:
                with self._open("GET", f"{path}?follow=true&offset={offset}", timeout=None) as response:
                    lost_at = None
                    while chunk := response.read1(65536):
                        out.write(chunk)
                        out.flush()
                        offset += len(chunk)
                if self.job(ref)["state"] in ("succeeded", "failed", "cancelled"):
                    return
            except RemoteError:
                lost_at = lost_at or time.monotonic()
                if time.monotonic() - lost_at > RECONNECT_S:
                    raise
            except (OSError, HTTPException):
                lost_at = lost_at or time.monotonic()  # cut off mid-stream
            time.sleep(1.0)
