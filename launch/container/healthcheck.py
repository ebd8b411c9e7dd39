"""The image's HEALTHCHECK: ``serve --http`` must answer ``/healthz``; any other command is healthy.

Docker runs an image's one health check in every container of it, whatever the command, so the
check reads the container's command line from PID 1 (``tini -- largegraph ...``) and probes the
service only where one listens: a training container is healthy while it runs. ``/healthz`` answers
without a token. Standard library only: the image has no curl.

    python healthcheck.py                 # what the image runs
    python healthcheck.py ARGV...         # check as if PID 1 ran ARGV (tests, debugging)

Exit status: 0 healthy, 1 unhealthy (Docker's convention), with one line saying why.
"""
from __future__ import annotations

import json
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

TIMEOUT_S = 5.0


def command_line(pid: int = 1) -> list[str]:
    """The argument vector of process ``pid``."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _option(argv: list[str], flag: str) -> str | None:
    """The value of ``--flag VALUE`` or ``--flag=VALUE`` in ``argv``, the last one winning as argparse does."""
    value = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


def healthz_url(argv: list[str]) -> str | None:
    """Where a ``serve --http HOST:PORT`` command line answers ``/healthz``; None for any other command
    (or port 0, whose port only the server's log knows)."""
    if "serve" not in argv:
        return None
    address = _option(argv, "--http")
    if not address:
        return None
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if port in ("", "0"):
        return None
    # a wildcard bind answers on loopback; the check runs inside the container
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    scheme = "https" if _option(argv, "--tls-cert") else "http"
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}/healthz"


def _unverified_tls() -> ssl.SSLContext:
    """TLS without checking the certificate: it names the address clients use, not loopback, and
    this probe sends no secret."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def probe(url: str) -> str | None:
    """None when ``url`` answers 200 with ``{"status": "ok"}``, else what went wrong."""
    context = _unverified_tls() if url.startswith("https") else None
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S, context=context) as response:
            body = json.loads(response.read() or b"null")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"{url}: {getattr(exc, 'reason', exc)}"
    return None if body == {"status": "ok"} else f"{url}: unexpected answer {body!r}"


def main(argv: list[str] | None = None) -> int:
    """Check the command ``argv`` (default: PID 1's); print one line; 0 healthy, 1 not."""
    url = healthz_url(argv if argv is not None else command_line())
    if url is None:
        print("healthy: no `serve --http` in this container's command")
        return 0
    problem = probe(url)
    print(f"unhealthy: {problem}" if problem else f"healthy: {url}")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or None))
