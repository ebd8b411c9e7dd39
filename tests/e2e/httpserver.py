"""What the HTTP job-service tests share: a real `largegraph serve --http` on a free loopback port,
tokens made by the real CLI, and plain HTTP calls (the standard library's client: independent of the
remote CLI's httpx, so a fault of either shows)."""
from __future__ import annotations

import http.client
import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from helpers import ROOT
from test_job_service import CLI, FAST_SERVE, env_for, lg, wait_for

LOOPBACK = "127.0.0.1"
_LISTENING = re.compile(r"serving the API and status page on (https?://127\.0\.0\.1:\d+)/")


def create_token(ws: Path, name: str) -> str:
    made = lg(ws, "token", "create", "--name", name)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes
    set_cookies: list[str]

    def json(self) -> dict:
        return json.loads(self.body)


class Server:
    """A `largegraph serve --http 127.0.0.1:0` process: the daemon plus the API, on a port the kernel picked."""

    def __init__(self, ws: Path, *args: str, tls: tuple[Path, Path] | None = None):
        self.ws = ws
        self.log_path = ws.parent / f"serve-http-{time.monotonic_ns()}.log"
        extra = ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])] if tls else []
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([*CLI, "serve", *FAST_SERVE, "--http", f"{LOOPBACK}:0", *extra, *args],
                                         cwd=ROOT, env=env_for(ws), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.url = wait_for(self._listening, timeout=120, explain=self.output)

    def _listening(self) -> str | None:
        """The server's address once its log says it listens (the port is the kernel's choice)."""
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited with {self.proc.returncode}: {self.output()}")
        found = _LISTENING.search(self.log_path.read_text())
        return found.group(1) if found else None

    def output(self) -> str:
        return self.log_path.read_text()

    def request(self, method: str, path: str, token: str | None = None, body: bytes | dict | None = None,
                headers: dict | None = None, timeout: float = 60) -> Reply:
        """One HTTP request, with the path sent exactly as given (no normalising of '..')."""
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            pairs = response.getheaders()
            return Reply(response.status, {k.lower(): v for k, v in pairs}, response.read(),
                         [v for k, v in pairs if k.lower() == "set-cookie"])
        finally:
            conn.close()

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM (a drain) and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup."""
        self.proc.kill()
        self.proc.wait()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, kind, *_exc) -> None:
        if kind is not None:
            self.kill()
            print(self.output())
        else:
            assert self.stop() == 0, self.output()


def submit_body(config: Path, *overrides: str, **options) -> dict:
    """A POST /v1/jobs body for a YAML file, as the remote CLI sends it."""
    return {"config": config.read_text(), "overrides": list(overrides), "source": str(config), **options}


def remote_env(server: Server, token: str) -> dict:
    """The environment of a remote CLI command talking to ``server``."""
    return {"LARGEGRAPH_SERVER": server.url, "LARGEGRAPH_TOKEN": token}
