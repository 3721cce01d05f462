"""The command line is the top of the stack: no other stepwork module imports it, and importing it
registers no workflow (the demo workflows are defined only when `stepwork demo` runs)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "stepwork"


def test_no_module_outside_the_cli_imports_it() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        if "cli" in path.relative_to(SRC).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(SRC)} imports {n}" for n in names if n.startswith("stepwork.cli")]
    assert not offenders


def test_importing_the_command_line_registers_nothing_and_loads_no_http() -> None:
    code = ("import sys, stepwork.cli.main\n"
            "from stepwork.engine.registry import registered_workflows\n"
            "print(sorted(registered_workflows()), 'stepwork.http' in sys.modules, 'sqlalchemy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "[] False False", done.stderr
