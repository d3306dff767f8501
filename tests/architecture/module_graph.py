"""The import graph of our packages, read from the source with `ast`.

Every import statement counts, wherever it stands: at the top, inside a function (a
lazy import), or under ``if TYPE_CHECKING:``. Relative imports are resolved against the
importing module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "edge_agent",
    "cloud_service",
    "shared_protocol",
    "research",
    "cogenesis",
    "llama_runtime",
)

Graph = dict[str, set[str]]


def module_files(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Module name -> file, for every .py file of the packages that exist under root."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imported_names(path: Path, module: str) -> Iterator[str]:
    """Every dotted name the file's import statements load (relative ones resolved); a
    name that is an attribute of a module is resolved to that module later."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, module, is_package)
            # `from pkg import sub` depends on the submodule pkg.sub when there is one,
            # and on pkg itself when `sub` is a name that pkg defines.
            yield from (base if a.name == "*" else f"{base}.{a.name}" for a in node.names)


def _absolute(name: str | None, level: int, module: str, is_package: bool) -> str:
    if level == 0:
        return name or ""
    parts = module.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (level - 1)]
    return ".".join([*anchor, name] if name else anchor)


def import_graph(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> Graph:
    """Module -> the modules of the same packages it imports (self-imports left out)."""
    files = module_files(root, packages)
    graph: Graph = {name: set() for name in files}
    for module, path in files.items():
        for name in imported_names(path, module):
            target = _known_prefix(name, files)
            if target is not None and target != module:
                graph[module].add(target)
    return graph


def _known_prefix(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is one of our modules."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def strongly_connected(graph: Graph) -> list[set[str]]:
    """Tarjan's strongly connected components (iterative, so deep graphs are fine)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def cycles(graph: Graph) -> list[list[str]]:
    """The groups of modules that import each other, directly or around a loop."""
    return sorted(sorted(c) for c in strongly_connected(graph) if len(c) > 1)
