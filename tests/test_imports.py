"""One-way flow: the import graph of bioner_grid, counting imports inside functions as well as at
module level, has no cycle, and the package never imports its Hydra launcher plugin (the plugin
imports the package; Hydra discovers the plugin). ``python tests/test_imports.py`` prints the graph."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bioner_grid"


def imported(path: Path) -> list[tuple[str, int, bool]]:
    """(module, line, inside a function) of every import statement in a file; ``from bioner_grid
    import x`` counts as importing ``bioner_grid.x``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "bioner_grid" else [node.module]
        else:
            continue
        out += [(name, node.lineno, id(node) in in_function) for name in names]
    return out


def graph() -> dict[str, set[str]]:
    """Module -> the bioner_grid modules it imports (anywhere in the file)."""
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for m in modules:
        for name, _, _ in imported(PACKAGE / f"{m}.py"):
            parts = name.split(".")
            if parts[0] == "bioner_grid" and len(parts) > 1 and parts[1] in modules and parts[1] != m:
                edges[m].add(parts[1])
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_package_import_graph_has_no_cycle():
    assert cycles(graph()) == []


def test_readers_are_peers_over_corpus():
    edges = graph()
    for reader in ("pubtator", "aio", "corpus"):
        assert "data" not in edges[reader], reader
    assert edges["corpus"] <= {"errors"}  # the error hierarchy is below every reader
    assert "report" not in edges["report_figures"] and "report" not in edges["runtable"]


def test_the_package_does_not_import_its_launcher_plugin():
    for path in PACKAGE.glob("*.py"):
        assert not [n for n, _, _ in imported(path) if n.startswith("hydra_plugins.bioner_grid_launcher")], path.name


if __name__ == "__main__":
    edges = graph()
    for m in sorted(edges):
        local = sorted({n for n, _, inside in imported(PACKAGE / f"{m}.py") if inside})
        print(f"{m} -> {', '.join(sorted(edges[m])) or '-'}" + (f"   (inside functions: {', '.join(local)})" if local else ""))
    found = cycles(edges)
    print("cycles:", found or "none")
    sys.exit(1 if found else 0)
