"""The remote job service: `submit`, `status`, `logs`, `cancel` and `fetch` through a `serve --http`,
with the same output and exit codes as on the server's own machine.

:class:`RemoteJobService` is the HTTP implementation of :class:`largegraph.jobs.service.JobService`,
on httpx. Replies are parsed into the same :class:`largegraph.jobs.views.JobView` the server answers
with. Every failure is one line: the server's own error for a refused request (bad config, unknown
job), or what is wrong with the connection. Redirects are never followed: a token is only ever
sent to the address the user named.
"""
from __future__ import annotations

import argparse
import os
import ssl
import time
from contextlib import closing
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence
from urllib.parse import quote, urlsplit

import httpx

from largegraph.core.errors import JobError
from largegraph.jobs.store import NoSuchJob
from largegraph.jobs.submission import SubmitOptions
from largegraph.jobs.views import JobView
from largegraph.jobs.workspace import is_valid_name
from largegraph.server.cli import CA_ENV, SERVER_ENV, TOKEN_ENV, named_server

TIMEOUT_S = 60.0        # for one call; a followed log has none (a quiet job sends nothing for a while)
RECONNECT_S = 60.0      # how long `logs --follow` keeps trying when the server goes away mid-stream
RETRY_S = 1.0           # pause between two tries of a followed log


class RemoteError(JobError):
    """The server could not be reached or refused the request."""


def client_for(args: argparse.Namespace) -> "RemoteJobService":
    """The remote service of the server named by ``--server`` or ``$LARGEGRAPH_SERVER``."""
    url = named_server(args)
    if not url:
        raise RemoteError(f"no server named: pass --server URL or set {SERVER_ENV}")
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise RemoteError(f"talking to {url} needs a token: set {TOKEN_ENV} (made on the server with "
                          "`largegraph token create --name YOU`)")
    return RemoteJobService(url, token, getattr(args, "cacert", None) or os.environ.get(CA_ENV))


def _ref_path(ref: str | int) -> str:
    ref = str(ref)
    if not ((ref.isdigit() and len(ref) <= 18) or is_valid_name(ref)):
        raise NoSuchJob(f"no job named {ref!r}: job names are 1-64 letters, digits, '_', '.' or '-'")
    return quote(ref, safe="")


def _tls_context(cafile: str | None) -> ssl.SSLContext:
    """The system's trusted certificates, or only ``cafile``'s: never httpx's own bundle, so that
    ``--cacert`` and the system's store mean what they meant before."""
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise RemoteError(f"cannot read CA certificate {cafile}: {exc}") from None


class RemoteJobService:
    """The job service of one server, called with one token."""

    def __init__(self, url: str, token: str, cafile: str | None = None,
                 transport: httpx.BaseTransport | None = None):
        """Args:
            url: the server's address, ``http(s)://HOST:PORT``.
            token: the bearer token sent with every request.
            cafile: the only CA certificate to trust for https (default: the system's).
            transport: httpx's transport (default: the network); tests pass a mock one.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RemoteError(f"server {url!r} must be an http:// or https:// address, e.g. https://gpu-node:8470")
        self.base = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base, timeout=TIMEOUT_S, follow_redirects=False,
            verify=_tls_context(cafile) if parts.scheme == "https" else True,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}, transport=transport)

    # --- plumbing ----------------------------------------------------------------------------------
    def _send(self, method: str, path: str, *, stream: bool = False, **kwargs) -> httpx.Response:
        """One request; a refusal or an unreachable server is a one-line ``JobError``."""
        try:
            response = self.http.send(self.http.build_request(method, path, **kwargs), stream=stream)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.is_success:
            return response
        try:
            response.read()
        except httpx.TransportError:
            pass  # the status alone says enough
        finally:
            response.close()
        raise self._refused(response)

    def _unreachable(self, exc: httpx.TransportError) -> RemoteError:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, ssl.SSLError):
            cause = cause.__cause__ or cause.__context__
        hint = (f"; trust its certificate with --cacert or ${CA_ENV}" if cause is not None
                else "; is `largegraph serve --http` running there?")
        return RemoteError(f"cannot reach server {self.base}: {str(exc) or type(exc).__name__}{hint}")

    def _refused(self, response: httpx.Response) -> JobError:
        try:
            message = response.json().get("error") or response.reason_phrase
        except (ValueError, AttributeError):
            message = response.reason_phrase
        message = " ".join(str(message).split())  # one line, whatever the server said
        code = response.status_code
        if code == 401:
            return RemoteError(f"server {self.base} refused the token ({message.split(':')[0]}); check "
                               f"${TOKEN_ENV}, or create one on the server with `largegraph token create`")
        if response.is_redirect:
            return RemoteError(f"server {self.base} redirects to {response.headers.get('location')}; give "
                               "--server the address of `largegraph serve --http` itself")
        if code == 404 and message.startswith("no job"):
            return NoSuchJob(message)
        if 400 <= code < 500:
            return JobError(message)
        return RemoteError(f"server {self.base} failed ({code}): {message}")

    def _json(self, method: str, path: str, **kwargs) -> dict:
        return self._send(method, path, **kwargs).json()

    # --- the service -------------------------------------------------------------------------------
    def submit(self, config: str, overrides: Sequence[str], options: SubmitOptions) -> JobView:
        """Queue a job from a local YAML file. The file is checked for being there and being YAML here,
        with `submit`'s messages; the server validates the rest."""
        from largegraph.config import read_yaml

        read_yaml(config)
        body = {"config": Path(config).read_text(), "overrides": list(overrides), "source": str(config),
                "name": options.name, "priority": options.priority, "retries": options.retries,
                "nproc": options.nproc, "device": options.device, "max_restarts": options.max_restarts,
                "nodes": options.nodes, "partition": options.partition, "time_limit": options.time_limit}
        return JobView.model_validate(self._json("POST", "/v1/jobs", json=body)["job"])

    def jobs(self, refs: Sequence[str] = ()) -> list[JobView]:
        for ref in refs:
            _ref_path(ref)
        if refs:
            reply = self._json("GET", "/v1/jobs", params=[("name", ref) for ref in refs])
            return [JobView.model_validate(j) for j in reply["jobs"]]
        jobs, after = [], 0
        while after is not None:  # a page at a time, as the server hands them out
            reply = self._json("GET", "/v1/jobs", params={"after": after} if after else None)
            jobs += [JobView.model_validate(j) for j in reply["jobs"]]
            after = reply.get("next")
        return jobs

    def job(self, ref: str | int) -> JobView:
        return JobView.model_validate(self._json("GET", f"/v1/jobs/{_ref_path(ref)}")["job"])

    def cancel(self, ref: str) -> JobView:
        return JobView.model_validate(self._json("POST", f"/v1/jobs/{_ref_path(ref)}/cancel")["job"])

    def metrics(self, ref: str, since: int = 0) -> list[dict]:
        return self._json("GET", f"/v1/jobs/{_ref_path(ref)}/metrics", params={"since": since})["records"]

    def fetch(self, ref: str, name: str, out: Path) -> int:
        """Download one file of the job's run directory to ``out`` (replaced only once it is whole)."""
        from largegraph.core.fsutil import atomic_write_from

        path = f"/v1/jobs/{_ref_path(ref)}/artifacts/{quote(name, safe='')}"
        with closing(self._send("GET", path, stream=True)) as response:
            try:
                return atomic_write_from(out, _Reader(response.iter_bytes()))
            except (OSError, httpx.TransportError) as exc:
                raise RemoteError(f"download of {name} from {self.base} broke off: {exc}") from None

    def logs(self, ref: str, out: BinaryIO, follow: bool = False) -> int:
        path = f"/v1/jobs/{_ref_path(ref)}/logs"
        if follow:
            return self._follow(path, ref, out)
        offset = 0
        while True:
            response = self._send("GET", path, params={"offset": offset})
            data, size = response.content, int(response.headers["X-Log-Size"])
            _write(out, data)
            offset += len(data)
            if not data or offset >= size:
                return offset

    def _follow(self, path: str, ref: str, out: BinaryIO) -> int:
        """Stream the log; if the server goes away before the job ends (a restart), pick up again
        from the last byte received."""
        offset, lost_at = 0, None
        while True:
            try:
                with closing(self._send("GET", path, stream=True, timeout=None,
                                        params={"follow": "true", "offset": offset})) as response:
                    lost_at = None
                    for chunk in response.iter_raw():
                        _write(out, chunk)
                        offset += len(chunk)
                if self.job(ref).is_final:
                    return offset
            except RemoteError:
                lost_at = lost_at or time.monotonic()
                if time.monotonic() - lost_at > RECONNECT_S:
                    raise
            except httpx.TransportError:
                lost_at = lost_at or time.monotonic()  # cut off mid-stream
            time.sleep(RETRY_S)

    def unserved_note(self) -> str | None:
        return None  # the server's own daemon serves its jobs


def _write(out: BinaryIO, data: bytes) -> None:
    out.write(data)
    out.flush()


class _Reader:
    """A response body as the file-like ``read`` that ``atomic_write_from`` copies from."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks

    def read(self, _size: int = -1) -> bytes:
        return next((chunk for chunk in self._chunks if chunk), b"")
