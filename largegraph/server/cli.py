"""The command-line side of the network service: ``token create|list|revoke``, the HTTP options of
``serve`` and the ``--server`` options of the commands a server can answer.

Importing this module costs nothing heavy: FastAPI and uvicorn are imported only by ``serve --http``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import closing

from largegraph.core.errors import EXIT_OK, JobError
from largegraph.jobs.store import JobStore
from largegraph.jobs.views import aligned
from largegraph.jobs.workspace import Workspace, check_name, open_store

SERVER_ENV = "LARGEGRAPH_SERVER"
TOKEN_ENV = "LARGEGRAPH_TOKEN"
CA_ENV = "LARGEGRAPH_CA_CERT"
DEFAULT_MAX_BODY = 1 << 20  # a job config is a few KiB; anything near a MiB is a mistake or an attack
# Followed logs hold a connection each for as long as their jobs run: this bounds what clients (or a
# token holder gone wrong) can tie up; beyond it, the server answers 503.
DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_MAX_QUEUED = 100  # jobs one token may have waiting; more get 429
DEFAULT_MAX_FOLLOW_S = 3600  # a stream held longer is ended; the CLI picks up from its last byte


def named_server(args: argparse.Namespace) -> str | None:
    """The server a command is sent to (``--server``, else ``$LARGEGRAPH_SERVER``), or None for this machine."""
    return getattr(args, "server", None) or os.environ.get(SERVER_ENV) or None


def add_client_options(p: argparse.ArgumentParser) -> None:
    """``--server`` and ``--cacert``: send the command to a `serve --http` instead of the local store."""
    p.add_argument("--server", metavar="URL",
                   help=f"a `largegraph serve --http` to send the command to (default ${SERVER_ENV}); "
                        f"the token comes from ${TOKEN_ENV}")
    p.add_argument("--cacert", metavar="FILE",
                   help=f"CA certificate to trust for an https server (default ${CA_ENV}, else the system's)")


def add_http_options(p: argparse.ArgumentParser) -> None:
    """The options of ``serve`` that start the API and status page beside the daemon."""
    g = p.add_argument_group("HTTP API and status page")
    g.add_argument("--http", metavar="HOST:PORT",
                   help="also serve the API and the status page here, e.g. 127.0.0.1:8470 (port 0: any free port)")
    g.add_argument("--tls-cert", metavar="FILE", help="TLS certificate (PEM); with --tls-key, serve https")
    g.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    g.add_argument("--insecure", action="store_true",
                   help="allow plain http on an address other than loopback (tokens cross the network unencrypted)")
    g.add_argument("--data-root", action="append", default=[], metavar="DIR",
                   help="a directory that jobs submitted over HTTP may read datasets from (repeatable; "
                        "default <workspace>/data)")
    limits = (("--max-body", int, DEFAULT_MAX_BODY, "BYTES", "largest request body accepted"),
              ("--max-connections", int, DEFAULT_MAX_CONNECTIONS, "N",
               "connections served at once, open log streams included; more get 503"),
              ("--max-queued", int, DEFAULT_MAX_QUEUED, "N", "jobs one token may have queued at once; more get 429"),
              ("--max-follow", float, DEFAULT_MAX_FOLLOW_S, "SECONDS",
               "longest one followed log stream lasts; `logs --follow` reconnects and goes on"))
    for flag, kind, default, metavar, what in limits:
        g.add_argument(flag, type=kind, default=default, metavar=metavar, help=f"{what} (default {default})")


def add_token_command(sub, common: argparse.ArgumentParser, parser_class: type[argparse.ArgumentParser]) -> None:
    """``largegraph token create|list|revoke``: the API's bearer tokens, kept in the workspace's store."""
    tokens = sub.add_parser("token", parents=[common], help="create, list or revoke API tokens of `serve --http`")
    actions = tokens.add_subparsers(dest="token_cmd", required=True, metavar="{create,list,revoke}",
                                    parser_class=parser_class)
    p = actions.add_parser("create", parents=[common], help="create a token and print it (shown only this once)")
    p.add_argument("--name", required=True, help="who or what the token is for (e.g. alice, ci)")
    p.set_defaults(func=cmd_token_create)
    p = actions.add_parser("list", parents=[common], help="list tokens: name, created, last used, revoked")
    p.add_argument("--json", action="store_true", help="machine-readable records")
    p.set_defaults(func=cmd_token_list)
    p = actions.add_parser("revoke", parents=[common], help="revoke a token: the server refuses it at once")
    p.add_argument("name", help="the token's name")
    p.set_defaults(func=cmd_token_revoke)


def _store(args: argparse.Namespace, create: bool = False) -> JobStore:
    return open_store(Workspace(args.workspace), create)


def cmd_token_create(args: argparse.Namespace) -> int:
    """Create a token, store its digest, print the token itself (the only time it is shown)."""
    from largegraph.server.auth import new_token, token_digest

    name = check_name(args.name, "token name")  # the job names' alphabet: it is printed and logged
    token = new_token()
    with closing(_store(args, create=True)) as store:
        store.add_token(name, token_digest(token))
    print(token)
    print(f"largegraph: note: token {name!r} created; it is shown only now (set {TOKEN_ENV} to it)",
          file=sys.stderr)
    return EXIT_OK


def cmd_token_list(args: argparse.Namespace) -> int:
    """Print every token's name and dates (never the tokens: only digests are stored)."""
    with closing(_store(args)) as store:
        records = store.tokens()
    if args.json:
        print(json.dumps(records, indent=2))
        return EXIT_OK

    def when(stamp: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else "-"

    rows = [("NAME", "CREATED", "LAST USED", "REVOKED")]
    rows += [(r["name"], when(r["created_at"]), when(r["last_used_at"]), when(r["revoked_at"])) for r in records]
    print(aligned(rows) if records else "no tokens")
    return EXIT_OK


def cmd_token_revoke(args: argparse.Namespace) -> int:
    """Revoke a live token by name."""
    with closing(_store(args)) as store:
        if not store.revoke_token(args.name):
            raise JobError(f"no live token named {args.name!r}; see `largegraph token list`")
    print(f"revoked {args.name}")
    return EXIT_OK
