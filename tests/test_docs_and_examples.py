"""The documentation's code snippets and the brand demo run, and say what they promise.

Every page (README.md and docs/*.md) is checked twice, each page in its own process, all pages at once:

- by ``docs/check_snippets.py``, which runs the page's ``python`` blocks in order and checks the
  outputs their ``print(...)  # expected`` comments promise;
- in a real ``python -m asyncio`` REPL, for the pages with top-level ``await`` blocks: those blocks are
  fed to its stdin line by line, exactly as shown, as a reader pasting them would (so a blank line
  inside an indented block ends the block there, and fails). The page's other blocks are scripts, not
  REPL input: each is fed as one line that runs it in a helper thread, outside the REPL's event loop
  (``run_sync`` refuses a running loop), so that the REPL has what they define.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT / "docs" / "check_snippets.py"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT = 120

_MARK = "@@snippet {}@@"
_MARK_RE = re.compile(r"@@snippet (.*?)@@")
# What the REPL prints for an exception or a syntax error in what it was given.
# (Not anchored: the REPL writes its prompts, `>>> ` and `... `, on the same lines as the output.)
_ERROR_RE = re.compile(r'Traceback \(most recent call last\)|File "<[\w-]+>", line \d+')


@functools.cache
def _checker() -> ModuleType:
    """docs/check_snippets.py, for its definition of a page's blocks."""
    spec = importlib.util.spec_from_file_location("check_snippets", CHECKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _blocks(page: Path) -> list[str]:
    return [textwrap.dedent(block) for block in _checker()._BLOCK.findall(page.read_text())]


def _has_top_level_await(source: str) -> bool:
    code = compile(source, "<snippet>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    return bool(code.co_flags & inspect.CO_COROUTINE)


def _repl_input(page: Path, blocks: list[str]) -> str:
    """What is typed into the REPL for ``page``: a marker line before each block, then the block."""
    lines = []
    for number, source in enumerate(blocks, 1):
        where = f"{page.name}, block {number}"
        lines.append(f"print({_MARK.format(where)!r})")
        if _has_top_level_await(source):
            lines.extend(source.splitlines())
            lines.append("")  # the reader presses Enter after pasting the block
        else:
            lines.append(f'_t = __import__("threading").Thread(target=exec, args=(compile({source!r}, {where!r}, '
                         f'"exec"), globals())); _t.start(); _t.join()')
    lines.append(f"print({_MARK.format('end')!r})")
    return "\n".join(lines) + "\n"


def _repl_failures(page: Path, output: str) -> list[str]:
    """The blocks whose part of the REPL's (merged, unbuffered) output shows an error."""
    parts = _MARK_RE.split(output)  # [banner, where 1, output 1, where 2, output 2, ..., "end", rest]
    if "end" not in parts[1::2]:
        return [f"{page.name}: the REPL stopped before the end of the page\n{output[-3000:]}"]
    failures = []
    for where, text in zip(parts[1::2], parts[2::2], strict=True):
        if _ERROR_RE.search(text):
            failures.append(f"{where}, in python -m asyncio:\n{text.replace('>>> ', '').replace('... ', '')}")
    return failures


def _run_all(commands: dict[str, tuple[list[str], str | None]]) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run the commands concurrently (stdin given or empty); wait for all of them."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}  # a bare REPL, as after install
    procs = {name: subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
             for name, (argv, _) in commands.items()}
    done = {}
    for name, proc in procs.items():
        try:
            out, _ = proc.communicate(commands[name][1] or "", timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            out += f"\n[timed out after {TIMEOUT} s]"
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out)
    return done


def test_every_docs_snippet_runs_and_prints_what_the_page_says() -> None:
    """check_snippets.py runs each page's Python blocks and checks their `# expected` outputs."""
    results = _run_all({page.name: ([sys.executable, str(CHECKER), str(page)], None) for page in PAGES})
    failed = {name: done.stdout[-4000:] for name, done in results.items() if done.returncode != 0}
    assert not failed, "\n\n".join(f"== {name}\n{out}" for name, out in failed.items())


def test_top_level_await_snippets_run_as_shown_in_the_asyncio_repl() -> None:
    """Pages with top-level `await` blocks, typed into `python -m asyncio` line by line, raise nothing."""
    pages = {page: blocks for page in PAGES if (blocks := _blocks(page)) and any(map(_has_top_level_await, blocks))}
    assert pages, "no page has a top-level await snippet any more: is the block pattern still right?"
    results = _run_all({page.name: ([sys.executable, "-u", "-m", "asyncio"], _repl_input(page, blocks))
                        for page, blocks in pages.items()})
    failures = [failure for page in pages for failure in _repl_failures(page, results[page.name].stdout)]
    assert not failures, "\n\n".join(failures)


def test_brand_demo_shows_a_success_and_a_rollback() -> None:
    """`make demo`'s program exits 0 and reports the rolled-back run as reverted."""
    proc = subprocess.run([sys.executable, "-m", "examples.brand.demo"], cwd=ROOT, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reverted" in proc.stdout
    assert "Every run ended as expected." in proc.stdout


def test_shop_demo_creates_rolls_back_and_lists_over_http(tmp_path: Path) -> None:
    """`make demo`'s second program (the shop over HTTP) exits 0 having checked every outcome."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "examples.shop.demo"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=TIMEOUT, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Every outcome was as expected." in proc.stdout
    assert "reverted" in proc.stdout and "Welcome, Acme!" in proc.stdout
