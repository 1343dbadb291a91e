"""No import cycle among mrizoo's modules at module level, and no import inside a function without a reason.

The layers contract (``tests/test_import_contract.py``) keeps lower layers from importing higher
ones; this test adds what a layers contract cannot see: two modules of one layer (or one package)
that import each other at import time. It reads the source (no import runs), so it also guards
modules that need optional packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mrizoo"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _top_level_imports(path: Path, modules: set[str], own: str) -> set[str]:
    """The mrizoo modules ``path`` imports while it is imported (statements outside functions and classes)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in modules else base)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue  # annotations only: never imported at run time
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                for block in ("body", "orelse", "finalbody"):
                    visit(getattr(node, block, []) or [])
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return {m for m in found if m in modules and m != own}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    names = set(modules)
    return {name: _top_level_imports(path, names, name) for name, path in modules.items()}


def test_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_level_import_cycles() -> None:
    graph = _graph()
    assert len(graph) > 100, "the package was not found"
    # a package's __init__ re-exporting its own submodules is how packages work, not a cycle
    pruned = {m: {d for d in deps if not (m.startswith(d + ".") and _modules()[d].name == "__init__.py")}
              for m, deps in graph.items()}
    assert _cycles(pruned) == []


def _function_imports() -> list[tuple[str, int, str, bool]]:
    rows = []
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    module = sub.module if isinstance(sub, ast.ImportFrom) else sub.names[0].name
                    k = sub.lineno - 2  # a comment may head a block of imports (its groups split by blank lines)
                    while k >= 0 and (lines[k].strip().startswith(("from ", "import ")) or not lines[k].strip()):
                        k -= 1
                    said = "#" in lines[sub.lineno - 1] or (k >= 0 and lines[k].strip().startswith("#"))
                    rows.append((str(path.relative_to(PACKAGE.parent)), sub.lineno, module or "", said))
    return sorted(set(rows))


def test_imports_inside_functions_say_why() -> None:
    """An import inside a function is there to keep start-up light (or for an optional package): a comment says so."""
    silent = [f"{f}:{line} imports {m}" for f, line, m, said in _function_imports() if not said]
    assert silent == [], "\n".join(silent)
