"""The import structure of largegraph/, read from the code: which layer each module belongs to, every
import between modules, cycles, and imports that run back up from a lower layer.

    python tests/layers.py            # one line per problem; exit 1 if there is any
    python tests/layers.py --mermaid  # the layer picture of docs/architecture.md, drawn from the imports

tests/unit/test_layers.py runs the same checks and fails while docs/architecture.md's picture is stale.
Imports inside functions count too: a lazy import is still a dependency.
"""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "largegraph"

# Low to high: a module may import its own layer and the layers below it, never one above.
# Each line: the layer's name, then the packages or modules (under largegraph.) it holds.
_TABLE = """
core: core
config: config config_doc
data: data
sampling: sampling
models: models
tasks: tasks
training: training
backends: backends
inference: inference benchmark
jobs: jobs
server: server
entry points: cli launcher __main__ .
"""
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (name, tuple("largegraph" if m == "." else f"largegraph.{m}" for m in modules.split()))
    for name, modules in (line.split(":") for line in _TABLE.strip().splitlines())]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` is or lies in."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(known: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the largegraph modules it imports (``from pkg import sub`` names the submodule)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for mod, path in known.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for target in targets:
                if target.startswith("largegraph"):
                    found = _resolve(target, known)
                    if found and found != mod:
                        graph[mod].add(found)
    return graph


def layer_of(mod: str) -> int:
    best, index = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (mod == prefix or mod.startswith(prefix + ".")) and len(prefix) > best:
                best, index = len(prefix), i
    return index


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def problems() -> list[str]:
    """Every module without a layer, every import that runs up a layer, every cycle."""
    known = modules()
    graph = imports(known)
    lines = [f"{m}: belongs to no layer (add it to LAYERS in tests/layers.py)" for m in known if layer_of(m) < 0]
    for mod in sorted(graph):
        for target in sorted(graph[mod]):
            if layer_of(target) > layer_of(mod):
                lines.append(f"{mod} ({LAYERS[layer_of(mod)][0]}) imports {target} "
                             f"({LAYERS[layer_of(target)][0]}), a higher layer")
    lines += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return lines


def _reduced(edges: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The edges no longer path already implies (a picture of what each layer needs directly)."""
    out = defaultdict(set)
    for a, b in edges:
        out[a].add(b)

    def reaches(start: int, goal: int, skip: tuple[int, int]) -> bool:
        seen, todo = set(), [start]
        while todo:
            v = todo.pop()
            for w in out[v]:
                if (v, w) == skip or w in seen:
                    continue
                if w == goal:
                    return True
                seen.add(w)
                todo.append(w)
        return False

    return {(a, b) for a, b in edges if not reaches(a, b, (a, b))}


def mermaid() -> str:
    """The layers as boxes and the imports between layers as arrows (those no longer path implies),
    highest layer first."""
    known = modules()
    graph = imports(known)
    edges = {(layer_of(a), layer_of(b)) for a in graph for b in graph[a] if layer_of(a) != layer_of(b)}
    edges = _reduced(edges)
    ids = {i: name.replace(" ", "_") for i, (name, _) in enumerate(LAYERS)}
    lines = ["flowchart TD"]
    for i in reversed(range(len(LAYERS))):
        name, prefixes = LAYERS[i]
        lines.append(f'    {ids[i]}["{name}: {", ".join(p.removeprefix("largegraph.") for p in prefixes)}"]')
    lines += [f"    {ids[a]} --> {ids[b]}" for a, b in sorted(edges, key=lambda e: (-e[0], -e[1]))]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if "--mermaid" in sys.argv:
        print(mermaid(), end="")
        sys.exit(0)
    found = problems()
    print("\n".join(found) if found else f"{len(modules())} modules, {len(LAYERS)} layers: no cycle, no upward import")
    sys.exit(1 if found else 0)
