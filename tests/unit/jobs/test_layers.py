"""The job service's layers, read from the source: the domain (largegraph.jobs) below the HTTP layer
(largegraph.server), the CLI front end (largegraph.jobs.cli) above both, and no import cycle among
them, lazy imports inside functions included."""
from __future__ import annotations

import ast

from helpers import ROOT

PACKAGES = ("jobs", "server")


def _imports() -> dict[str, set[str]]:
    """Module -> the modules of the two packages it imports anywhere in its source."""
    graph = {}
    for package in PACKAGES:
        for path in (ROOT / "largegraph" / package).glob("*.py"):
            names = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
                elif isinstance(node, ast.Import):
                    names |= {a.name for a in node.names}
            graph[f"largegraph.{package}.{path.stem}".removesuffix(".__init__")] = names
    return {module: {n for n in names if n in graph and n != module and n.count(".") == 2}
            for module, names in graph.items()}


def test_only_the_cli_front_end_of_jobs_imports_the_http_layer():
    upward = {(m, d) for m, deps in _imports().items() if m.startswith("largegraph.jobs.")
              for d in deps if d.startswith("largegraph.server.")}
    assert upward and {m for m, _ in upward} == {"largegraph.jobs.cli"}


def test_the_job_service_modules_import_no_cycle():
    graph, done, path = _imports(), set(), []

    def visit(module: str) -> None:
        assert module not in path, " -> ".join(path[path.index(module):] + [module])
        if module in done:
            return
        path.append(module)
        for dep in sorted(graph[module]):
            visit(dep)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
