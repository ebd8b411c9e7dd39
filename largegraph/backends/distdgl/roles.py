"""What a process of a distdgl job does: the launcher sets ``LARGEGRAPH_DISTDGL_ROLE`` for each.

* no role: this is the command a user ran, the launcher: it starts the group (:mod:`largegraph.backends.distdgl.launcher`).
* ``server``: a DGL graph server for one partition; it serves until the trainers leave, then exits.
* ``trainer``: joins the engine, then trains like any other run, on a ``DistGraph``.
"""
from __future__ import annotations

import os

from largegraph.backends.distdgl.launcher import HOST_ENV, LOCK_ENV, ROLE_ENV, SERVER, TRAINER
from largegraph.core.errors import LargeGraphError


def role() -> str | None:
    """``server``, ``trainer``, or None in the command the user ran."""
    return os.environ.get(ROLE_ENV) or None


def is_trainer() -> bool:
    return role() == TRAINER


def serve() -> None:
    """Be a graph server: DGL serves the partition and exits the process when the trainers are done."""
    from largegraph.backends.distdgl.data import initialize
    from largegraph.backends.distdgl.hostlock import hold_for_server

    if os.environ.get(LOCK_ENV):  # before DGL touches shared memory
        hold_for_server(_this_machine(), os.environ[LOCK_ENV])
    initialize(os.environ["DGL_IP_CONFIG"])
    raise SystemExit(0)  # not reached: DGL's server exits the process itself


def _this_machine() -> str:
    """This server's machine in words: the ip_config line its server id falls on."""
    from largegraph.backends.distdgl.launcher import read_ip_config

    try:
        machines = read_ip_config(os.environ["DGL_IP_CONFIG"], 0)
        return f"machine {machines[int(os.environ['DGL_SERVER_ID']) // int(os.environ['DGL_NUM_SERVER'])].host}"
    except (LookupError, ValueError, LargeGraphError):
        return "this machine"


def join() -> None:
    """Connect this trainer to the graph servers (before torch.distributed, as DGL requires)."""
    from largegraph.backends.distdgl.data import initialize

    initialize(os.environ["DGL_IP_CONFIG"])
    _pin_gloo_interface(os.environ.get(HOST_ENV, ""))


def _pin_gloo_interface(host: str) -> None:
    """Make gloo talk over the interface that holds this machine's ip_config address.

    Gloo otherwise uses whatever the host name resolves to, which on a machine with several
    networks (or a container) may be an address the other machines cannot reach; DGL already
    matched this machine by that address, so it is the one that works.
    """
    if not host or "GLOO_SOCKET_IFNAME" in os.environ:
        return
    name = interface_of(host)
    if name:
        os.environ["GLOO_SOCKET_IFNAME"] = name


def interface_of(host: str) -> str | None:
    """The network interface of this machine that holds ``host``'s IPv4 address, else None."""
    import socket

    import psutil

    try:
        wanted = socket.gethostbyname(host)
    except OSError:
        return None
    for name, addresses in psutil.net_if_addrs().items():
        if any(a.family == socket.AF_INET and a.address == wanted for a in addresses):
            return name
    return None


def leave() -> None:
    """Tell DGL this trainer is done; the last one to leave shuts the servers down."""
    import contextlib
    import io

    import dgl

    with contextlib.redirect_stdout(io.StringIO()):  # "Client[0] in group[0] is exiting..."
        dgl.distributed.exit_client()


__all__ = ["SERVER", "TRAINER", "is_trainer", "join", "leave", "role", "serve"]
