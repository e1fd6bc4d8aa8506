"""One-way flow: the import graph of bioner_grid, counting imports inside functions as well as at
module level, has no cycle, follows the package's layers, and the package never imports its Hydra
launcher plugin (the plugin imports the package; Hydra discovers the plugin).

``python tests/test_imports.py`` prints the graph, each module's layer, the function-local imports
and their count, and any import against the layers (exit 1 on a cycle or such an import)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bioner_grid"

# The layers, lowest first: a module imports only modules of its own layer or a lower one, at module
# level or inside a function. Readers turn files into corpora; weights count classes; align cuts
# sentences into sub-token windows; model builds, saves and loads models; train fine-tunes them on
# the machine's device (it gets its dev scorer from its caller, so it stays below scoring); scoring
# scores tag sequences, and significance compares two systems' scores (a sweep's summary does too);
# spec composes and checks a run's configuration; store records runs; report reads them back. Commands sit on top. A module's own command line (its ``main`` function and its
# ``__name__ == "__main__"`` block) is a command too: ``python -m bioner_grid.data`` composes a
# config, which the reader below it knows nothing of. Modules listed but absent are skipped.
LAYERS = [
    ("shared", ["__init__", "errors", "redact", "console", "cachedir"]),
    ("readers", ["corpus", "overlap", "data", "pubtator", "aio", "documents", "tagmodes"]),
    ("weights", ["weights"]),
    ("align", ["align"]),
    ("model", ["modeling", "heads", "bundle"]),
    ("train", ["runtime", "train", "preempt", "collapse"]),
    ("scoring", ["scoring", "faireval", "evaluate", "significance"]),  # significance: the paired bootstrap of scores
    ("spec", ["config", "compose", "schema", "cross", "spec"]),
    ("store", ["store", "tracking", "identity", "sweep", "search", "pruning"]),
    ("report", ["runtable", "report", "report_figures", "report_aio", "report_cross", "report_curve"]),
    ("commands", ["__main__", "pipeline", "plan", "estimate", "register", "tag", "tag_compare", "export", "tagger_model", "prefetch", "cli", "guard", "grid"]),
]
LAYER = {m: i for i, (_, members) in enumerate(LAYERS) for m in members}
COMMANDS = len(LAYERS) - 1


class Import(NamedTuple):
    name: str  # the imported module; ``from bioner_grid import x`` imports ``bioner_grid.x``
    line: int
    in_function: bool
    in_cli: bool  # inside the module's ``main`` function or its ``__name__ == "__main__"`` block


def imported(path: Path) -> list[Import]:
    """Every import statement of a file, in line order."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f)}
    cli_roots = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    cli_roots += [n for n in tree.body if isinstance(n, ast.If) and "__name__" in ast.unparse(n.test)]
    in_cli = {id(n) for root in cli_roots for n in ast.walk(root)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "bioner_grid" else [node.module]
        else:
            continue
        out += [Import(name, node.lineno, id(node) in in_function, id(node) in in_cli) for name in names]
    return sorted(out, key=lambda i: i.line)


def modules() -> set[str]:
    return {p.stem for p in PACKAGE.glob("*.py")}


def package_module(name: str, present: set[str]) -> str | None:
    """The bioner_grid module an imported name is (``bioner_grid.x`` or ``bioner_grid.x.y``), else None."""
    parts = name.split(".")
    return parts[1] if parts[0] == "bioner_grid" and len(parts) > 1 and parts[1] in present else None


def graph() -> dict[str, set[str]]:
    """Module -> the bioner_grid modules it imports (anywhere in the file)."""
    present = modules()
    edges: dict[str, set[str]] = {m: set() for m in present}
    for m in present:
        for i in imported(PACKAGE / f"{m}.py"):
            target = package_module(i.name, present)
            if target and target != m:
                edges[m].add(target)
    return edges


def against_layers() -> list[str]:
    """Every import of a higher layer's module: ``module.py:line imports target: layer A below B``."""
    present, found = modules(), []
    for m in sorted(present & set(LAYER)):
        for i in imported(PACKAGE / f"{m}.py"):
            target = package_module(i.name, present)
            if target is None or target not in LAYER:
                continue
            own = COMMANDS if i.in_cli else LAYER[m]
            if LAYER[target] > own:
                found.append(f"{m}.py:{i.line} imports {target}: layer {LAYERS[own][0]} below {LAYERS[LAYER[target]][0]}")
    return found


def function_local() -> dict[str, list[Import]]:
    """Module -> its imports inside functions (what a reader of the module's head does not see)."""
    return {m: [i for i in imported(PACKAGE / f"{m}.py") if i.in_function] for m in sorted(modules())}


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


def test_every_module_has_a_layer():
    unplaced = sorted(modules() - set(LAYER))
    assert not unplaced, f"place {unplaced} in LAYERS (tests/test_imports.py)"


def test_no_module_imports_a_higher_layer():
    assert against_layers() == []


def test_the_layer_check_catches_an_import_upwards(tmp_path, monkeypatch):
    """A reader importing the store inside a function, or scoring at module level, is caught; its
    command line (``main``) may import the configuration."""
    package = tmp_path / "bioner_grid"
    package.mkdir()
    (package / "corpus.py").write_text("def load():\n    from bioner_grid import tracking\n")
    (package / "data.py").write_text("from bioner_grid.scoring import score\n\n\ndef main():\n    from bioner_grid import config\n")
    for name in ("tracking", "scoring", "config"):
        (package / f"{name}.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert against_layers() == ["corpus.py:2 imports tracking: layer readers below store",
                                "data.py:1 imports scoring: layer readers below scoring"]


def test_readers_are_peers_over_corpus():
    edges = graph()
    for reader in ("pubtator", "aio", "corpus"):
        assert "data" not in edges[reader], reader
    assert edges["corpus"] <= {"errors"}  # the error hierarchy is below every reader
    assert "report" not in edges["report_figures"] and "report" not in edges["runtable"]


def test_the_package_does_not_import_its_launcher_plugin():
    for path in PACKAGE.glob("*.py"):
        assert not [i for i in imported(path) if i.name.startswith("hydra_plugins.bioner_grid_launcher")], path.name


if __name__ == "__main__":
    edges = graph()
    local = function_local()
    for m in sorted(edges):
        inside = sorted({i.name for i in local[m]})
        layer = LAYERS[LAYER[m]][0] if m in LAYER else "no layer"
        print(f"{m} [{layer}] -> {', '.join(sorted(edges[m])) or '-'}" + (f"   (inside functions: {', '.join(inside)})" if inside else ""))
    print("\nlayers, lowest first:")
    for name, members in LAYERS:
        absent = [m for m in members if m not in edges]
        print(f"  {name}: {', '.join(m for m in members if m in edges)}" + (f"   (not here: {', '.join(absent)})" if absent else ""))
    statements = [i for found in local.values() for i in found]
    ours = [i for i in statements if package_module(i.name, set(edges))]
    print(f"\nfunction-local imports: {len(statements)} ({len(ours)} of bioner_grid modules, "
          f"{len(statements) - len(ours)} of other packages) in {sum(1 for f in local.values() if f)} modules")
    found, wrong = cycles(edges), against_layers()
    print("cycles:", found or "none")
    print("imports against the layers:", ("\n  " + "\n  ".join(wrong)) if wrong else "none")
    sys.exit(1 if found or wrong else 0)
