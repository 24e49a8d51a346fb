"""No import circles in ``lab/``, between modules or between its packages; nothing is imported.

The graph has one node per module (a package is its ``__init__``) and one edge per ``import``
or ``from ... import`` anywhere in a module, inside functions and ``if TYPE_CHECKING:`` blocks
too: a lazy import hides a circle from Python, not from the reader. ``from lab.a import b``
points at ``lab.a.b`` when that is a module, else at ``lab.a``. The package graph merges each
``lab.<package>`` into one node, so that the packages stay layered (``lab.scenario`` may use
``lab.control``, but not the other way round).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "lab"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted((ROOT / PACKAGE).rglob("*.py"))}


def imported(tree: ast.AST, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of ``known`` that a module imports."""
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                       for alias in node.names]
        for target in targets:
            while target and target not in known:  # import lab.a.b.c of a non-module c
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = modules()
    known = set(paths)
    return {name: imported(ast.parse(path.read_text(), filename=str(path)), name, path.name == "__init__.py", known)
            for name, path in paths.items()}


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph with every ``lab.<package>.*`` merged into ``lab.<package>``."""
    def package(name: str) -> str:
        return ".".join(name.split(".")[:2])

    merged: dict[str, set[str]] = {}
    for name, targets in graph.items():
        merged.setdefault(package(name), set()).update(package(t) for t in targets if package(t) != package(name))
    return merged


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def shortest_loop(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One circle through the component's first module, as a path that ends where it starts."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                return paths[node] + [start]
            if nxt not in paths:
                paths[nxt] = paths[node] + [nxt]
                queue.append(nxt)
    return component


def test_the_graph_sees_function_level_and_relative_imports() -> None:
    source = "from . import b\nfrom .c import d\n\ndef f():\n    import lab.x.e\n    from lab.x import g\n"
    known = {"lab.x", "lab.x.a", "lab.x.b", "lab.x.c", "lab.x.e", "lab.x.g"}
    assert imported(ast.parse(source), "lab.x.a", False, known) == {"lab.x.b", "lab.x.c", "lab.x.e", "lab.x.g"}
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert shortest_loop(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    modules = {"lab.x.a": {"lab.y.b"}, "lab.y.b": {"lab.y.c"}, "lab.y.c": {"lab.x.d"}, "lab.x.d": set()}
    assert cycles(modules) == [] and cycles(package_graph(modules)) == [["lab.x", "lab.y"]]


def test_no_import_circles_in_lab() -> None:
    graph = import_graph()
    assert "lab.endpoints.quic.aioquic_seam" in graph
    found = cycles(graph)
    assert not found, "import circles in lab/:\n" + "\n".join(" -> ".join(shortest_loop(graph, c)) for c in found)


def test_no_import_circles_between_packages_of_lab() -> None:
    modules = import_graph()
    graph = package_graph(modules)
    report = []
    for component in cycles(graph):
        members = set(component)
        edges = sorted(f"  {name} -> {target}" for name, targets in modules.items() for target in targets
                       if ".".join(name.split(".")[:2]) in members and ".".join(target.split(".")[:2]) in members
                       and ".".join(name.split(".")[:2]) != ".".join(target.split(".")[:2]))
        report += [" -> ".join(shortest_loop(graph, component)) + f" ({', '.join(component)}), through:", *edges]
    assert not report, "import circles between packages of lab/:\n" + "\n".join(report)
