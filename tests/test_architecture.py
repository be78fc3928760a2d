"""The codebase's structural rules (docs/ARCHITECTURE.md), checked so they stay true.

- no import cycles between senet's modules (function-local imports count: they only hide a cycle);
- library modules never import the package face (``import senet``, ``from senet import ...``):
  ``create_model`` comes from ``senet.factory``;
- nothing imports the CLI, and models/layers never import training, analysis or interop code;
- no function in src/ is longer than 120 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_FUNCTION_LINES = 120


def _modules() -> dict[str, Path]:
    mods = {}
    for f in SRC.rglob("*.py"):
        name = ".".join(f.relative_to(SRC).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = f
    return mods


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path: Path) -> list[tuple[str, int]]:
    """(senet module, line) of every import in ``path``, function-local ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] == "senet"
        ):
            for alias in node.names:
                target = _resolve(f"{node.module}.{alias.name}") or _resolve(node.module)
                found.append((target, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "senet":
                    found.append((_resolve(alias.name), node.lineno))
    return [(t, line) for t, line in found if t]


GRAPH = {m: {t for t, _ in _imports(p) if t != m} for m, p in MODULES.items()}


def test_no_import_cycles() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_library_modules_do_not_import_the_package_face() -> None:
    bad = [
        f"{m}:{line}"
        for m, p in MODULES.items()
        if m not in ("senet", "senet.__main__") and not m.startswith("senet.cli")
        for t, line in _imports(p)
        if t == "senet"
    ]
    assert not bad, f"import create_model from senet.factory, not the package face: {bad}"


def test_layering() -> None:
    rules = {
        "senet.layers": (
            "senet.models",
            "senet.train",
            "senet.analysis",
            "senet.interop",
            "senet.cli",
        ),
        "senet.models": ("senet.train", "senet.analysis", "senet.interop", "senet.cli"),
    }
    bad = []
    for m in MODULES:
        if m.startswith("senet.cli") or m == "senet.__main__":
            continue
        for t in GRAPH[m]:
            if t.startswith("senet.cli"):
                bad.append(f"{m} imports the CLI ({t})")
        for layer, forbidden in rules.items():
            if m.startswith(layer):
                bad += [f"{m} imports {t}" for t in GRAPH[m] if t.startswith(forbidden)]
    assert not bad, bad


def test_no_long_functions() -> None:
    long = []
    for m, p in MODULES.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{m}.{node.name}: {n} lines")
    assert not long, f"split these (max {MAX_FUNCTION_LINES} lines): {long}"
