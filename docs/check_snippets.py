"""Run the Python snippets of the documentation, to keep it true to the code.

    .venv/bin/python docs/check_snippets.py            # every docs/*.md page (the test also runs README.md)
    .venv/bin/python docs/check_snippets.py docs/steps.md

Rules:

- Every fenced block opened with ```` ```python ```` is run; blocks opened with ```` ```py ```` (signatures,
  fragments) are not. The blocks of one page run in order, in one namespace, each page in its own
  process (workflows register by name, process-wide).
- A block with a top-level ``await`` runs in ``asyncio.run``, as in ``python -m asyncio``; others run
  as plain code.
- A line ``print(expr)  # text`` checks that the printed output is ``text`` (``…`` matches anything).

Exit code 0 when every block ran and every checked output matched.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import io
import pathlib
import re
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

_BLOCK = re.compile(r"^ *```python\n(.*?)^ *```", re.S | re.M)
_CHECKED_PRINT = re.compile(r"^(\s*)print\((.*)\)\s+#\s(.*)$")


def _rewrite(source: str) -> str:
    lines = []
    for line in source.splitlines():
        match = _CHECKED_PRINT.match(line)
        if match and not match.group(3).startswith(("noqa", "type:")):
            indent, expr, expected = match.groups()
            lines.append(f"{indent}__check_output__(lambda: print({expr}), {expected!r})")
        else:
            lines.append(line)
    return "\n".join(lines)


def _checker(failures: list[str], where: str) -> Callable[[Callable[[], None], str], None]:
    def check(fn: Callable[[], None], expected: str) -> None:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            fn()
        got = buffer.getvalue().rstrip("\n")
        print(got)
        pattern = ".*".join(re.escape(part) for part in expected.split("…"))
        if not re.fullmatch(pattern, got, re.S):
            failures.append(f"{where}: expected {expected!r}\n    got      {got!r}")
    return check


async def _await(coroutine: Coroutine[Any, Any, Any]) -> None:
    await coroutine


def run_page(path: pathlib.Path) -> list[str]:
    """Run the page's blocks; return the failures."""
    failures: list[str] = []
    namespace: dict[str, Any] = {"__name__": f"docs_{path.stem.replace('-', '_')}"}
    for number, block in enumerate(_BLOCK.findall(path.read_text()), 1):
        where = f"{path.name}, block {number}"
        namespace["__check_output__"] = _checker(failures, where)
        print(f"--- {where}")
        try:
            code = compile(_rewrite(textwrap.dedent(block)), where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                           dont_inherit=True)  # not this file's `from __future__ import annotations`
            if code.co_flags & inspect.CO_COROUTINE:
                asyncio.run(_await(eval(code, namespace)))
            else:
                exec(code, namespace)
        except Exception:
            failures.append(f"{where}: raised\n{traceback.format_exc()}")
    return failures


def main(argv: list[str]) -> int:
    if len(argv) == 1:  # one page, in this process
        failures = run_page(pathlib.Path(argv[0]))
        for failure in failures:
            print(f"FAILED {failure}", file=sys.stderr)
        return 1 if failures else 0
    pages = [pathlib.Path(p) for p in argv] or sorted(pathlib.Path(__file__).parent.glob("*.md"))
    bad = []
    for page in pages:
        done = subprocess.run([sys.executable, __file__, str(page)], capture_output=True, text=True)
        print(f"{page}: {'ok' if done.returncode == 0 else 'FAILED'}")
        if done.returncode != 0:
            bad.append(page)
            print(done.stdout[-2000:], done.stderr, sep="\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
