"""``largegraph serve --http``: the API and status page on a uvicorn thread beside the daemon.

The daemon keeps the main thread (its signal handlers, its loop, its drain on SIGTERM are exactly
those of a plain ``serve``); uvicorn runs its event loop on a second thread and stops when the
daemon does. The listening socket is bound here, before either starts, so a taken port or a bad
address is one line and exit code 2 rather than a traceback on a thread.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import ssl
import threading
import time
from pathlib import Path

from largegraph.core.errors import JobError
from largegraph.jobs.daemon import JobDaemon

_STARTUP_S = 60.0  # how long uvicorn may take to start listening on a loaded machine


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8470`` for IPv6) -> (host, port); ``JobError`` if malformed."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise JobError(f"--http {text!r} must look like HOST:PORT, e.g. 127.0.0.1:8470 (port 0: any free port)")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name that may resolve anywhere


def check_http_options(args: argparse.Namespace) -> None:
    """Refuse unsafe or broken ``serve --http`` options with one line (before anything starts)."""
    if not args.http:
        given = [flag for flag, value in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key),
                                          ("--insecure", args.insecure), ("--data-root", args.data_root)) if value]
        if given:
            raise JobError(f"{', '.join(given)}: only used with --http HOST:PORT; add --http or leave them out")
        return
    host, _ = parse_bind(args.http)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise JobError("--tls-cert and --tls-key go together: give both (PEM files) or neither")
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path and not Path(path).is_file():
            raise JobError(f"{flag} {path} is not a file")
    if not is_loopback(host) and not args.tls_cert and not args.insecure:
        raise JobError(f"refusing to serve plain http on {host}, which is not loopback: tokens would cross the "
                       "network unencrypted; give --tls-cert and --tls-key, or --insecure behind a TLS proxy")
    for flag, value in (("--max-body", args.max_body), ("--max-connections", args.max_connections),
                        ("--max-follow", args.max_follow), ("--max-queued", args.max_queued)):
        if value <= 0:
            raise JobError(f"{flag} must be positive, got {value}")
    for root in args.data_root:
        if not Path(root).expanduser().is_dir():
            raise JobError(f"--data-root {root} is not a directory")


def data_roots(args: argparse.Namespace, workspace_root: Path) -> list[Path]:
    """The directories HTTP-submitted jobs may read datasets from, symlinks resolved."""
    roots = args.data_root or [str(workspace_root / "data")]
    return [Path(os.path.realpath(Path(r).expanduser())) for r in roots]


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise JobError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve_with_http(daemon: JobDaemon, args: argparse.Namespace) -> int:
    """Run ``daemon`` with the API and status page served on ``args.http``; returns the daemon's exit code."""
    import uvicorn

    from largegraph.server.app import create_app
    from largegraph.server.connections import GuardedH11Protocol
    from largegraph.server.settings import ServerSettings

    host, port = parse_bind(args.http)
    tls = bool(args.tls_cert)
    settings = ServerSettings(workspace=daemon.ws, data_roots=data_roots(args, daemon.ws.root),
                              max_body=args.max_body, secure_cookies=tls, max_follow_s=args.max_follow,
                              max_queued=args.max_queued)
    config = uvicorn.Config(create_app(settings), log_level="warning", access_log=False, lifespan="off",
                            ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key, timeout_graceful_shutdown=5,
                            server_header=False, limit_concurrency=args.max_connections,
                            http=GuardedH11Protocol, timeout_keep_alive=5, ws="none")  # no websocket routes
    try:
        config.load()  # reads the certificate and key now, so a bad pair is one line
    except (ssl.SSLError, OSError) as exc:
        raise JobError(f"cannot use --tls-cert {args.tls_cert} / --tls-key {args.tls_key}: {exc}") from None
    sock = _listen(host, port)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="largegraph-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + _STARTUP_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise JobError(f"the HTTP server on {args.http} did not start; see the messages above")
        time.sleep(0.05)
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    daemon.log(f"serving the API and status page on {'https' if tls else 'http'}://{shown}:{bound[1]}/ "
               f"(datasets from {', '.join(map(str, settings.data_roots))})")
    try:
        return daemon.serve()
    finally:
        settings.stopping.set()  # ends log streams that follow jobs
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
