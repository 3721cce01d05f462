"""The package layering of docs/architecture.md, kept true: imports point one way, no cycles.

Every ``import`` in ``src/stepwork`` is read with ``ast``, function-local ones included (a local
import that hides a cycle is still a cycle); only imports under ``if TYPE_CHECKING:`` are left out,
since they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "stepwork"

# Lower ranks sit below higher ones; a module may import its own package and lower ranks only.
RANKS = {
    "": 0,  # top-level modules such as errors.py and container.py
    "orchestration": 1,
    "storage": 2,
    "query": 3,  # query.graph over SQLAlchemy models; the engine registers one over its database
    "engine": 4,
    "sdk": 5,
    "events": 6,
    "http": 6,
    "workers": 6,
    "telemetry": 6,  # spans and JSON logs made from the engine's events; OpenTelemetry imported when used
    "app": 7,  # an App wires an engine, its query, modules and an event bus with its subscribers
    "cli": 8,  # the command line sits on everything it drives, the HTTP layer and the App included
    "testing": 9,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (SRC / parts[1]).is_dir()) else ""


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """``(line, imported stepwork module)`` for every import that runs."""
    def visit(node: ast.AST) -> Iterator[tuple[int, str]]:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "stepwork":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] == "stepwork":
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    yield node.lineno, candidate if _exists(candidate) else base
        for child in ast.iter_child_nodes(node):
            yield from visit(child)
    yield from visit(tree)


def _exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (SRC / rel).with_suffix(".py").exists() or (SRC / rel / "__init__.py").exists()


def _graph() -> dict[str, list[tuple[int, str]]]:
    graph: dict[str, list[tuple[int, str]]] = {}
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(), str(path))
        graph[module] = list(_runtime_imports(tree, module, path.name == "__init__.py"))
    return graph


def test_every_package_has_a_rank() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= RANKS.keys(), f"give these packages a place in RANKS: {sorted(packages - RANKS.keys())}"


def test_imports_point_down_the_layers() -> None:
    wrong: list[str] = []
    for module, imports in _graph().items():
        if module == "stepwork":
            continue  # the public API re-exports from every layer
        mine = _package(module)
        for line, target in imports:
            if target == "stepwork":
                wrong.append(f"{module}:{line} imports the public package `stepwork` (import the module itself)")
                continue
            theirs = _package(target)
            if theirs != mine and RANKS[theirs] >= RANKS[mine]:
                wrong.append(f"{module}:{line} imports {target} ({theirs or 'top level'} is not below "
                             f"{mine or 'top level'})")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_import_cycles_between_modules() -> None:
    graph = {m: sorted({t for _, t in imports if t in _graph_keys()}) for m, imports in _graph().items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if nxt == "stepwork" or nxt == node:
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            walk(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _graph_keys() -> set[str]:
    return {_module_name(p) for p in SRC.rglob("*.py")}


@pytest.mark.parametrize("source, ok", [
    ("from stepwork.engine.run import Run\n", False),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from stepwork.engine.run import Run\n", True),
    ("def f():\n    from stepwork.sdk.steps import step\n", False),
])
def test_the_checker_sees_what_runs(source: str, ok: bool) -> None:
    # Read as if it were a module of the orchestration package.
    imports = list(_runtime_imports(ast.parse(source), "stepwork.orchestration.x", False))
    below = all(RANKS[_package(t)] <= RANKS["orchestration"] for _, t in imports)
    assert below is ok


MAX_LINES = 400


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(SRC.parent)): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"
