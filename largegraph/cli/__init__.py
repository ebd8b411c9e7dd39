"""The ``largegraph`` command line: one module per group of commands, :mod:`~largegraph.cli.entry` the
parser and the front door (one-line errors, exit codes).

Modules:
    entry     ``largegraph``: the parser of every command, error reporting, process exit
    parsing   the parser class every command uses (one-line argument errors)
    train     ``train``, ``resume``, ``partition``: train here or start a launcher
    data      ``data synth|import|inspect|planetoid``
    runs      ``predict``, ``embed``, ``report``, ``bench``
    jobs      the job service's commands (``serve``, ``submit``, ``status``, ``logs``, ``cancel``, ``fetch``, ``token``)
"""
from largegraph.cli.entry import build_parser, main

__all__ = ["build_parser", "main"]
