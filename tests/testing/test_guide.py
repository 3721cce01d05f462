"""docs/testing.md shows the brand example's tests as they are in examples/brand/tests/.

The page's snippets run under docs/check_snippets.py (test_docs_and_examples.py); these tests make
sure the tests it shows are the ones pytest runs, word for word.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "testing.md"
TESTS = ROOT / "examples" / "brand" / "tests"

_BLOCK = re.compile(r"^```(python|py)\n(.*?)^```", re.S | re.M)


def _blocks(kind: str) -> list[str]:
    return [code for lang, code in _BLOCK.findall(GUIDE.read_text()) if lang == kind]


def _functions(source: str) -> dict[str, str]:
    """Top-level functions of ``source`` by name, with their source text (decorators included)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            found[node.name] = "\n".join(lines[start - 1:node.end_lineno])
    return found


def _imports(source: str) -> list[str]:
    return [ast.unparse(node) for node in ast.parse(source).body if isinstance(node, (ast.Import, ast.ImportFrom))
            and not (isinstance(node, ast.ImportFrom) and node.module == "__future__")]


def test_the_guide_shows_every_brand_test_as_it_is() -> None:
    """Each test function of test_brand.py is on the page, identical; the page shows no other."""
    in_file = {name: src for name, src in _functions((TESTS / "test_brand.py").read_text()).items()
               if name.startswith("test_")}
    on_page = {}
    for block in _blocks("python"):
        on_page.update({name: src for name, src in _functions(block).items() if name.startswith("test_")})
    assert sorted(on_page) == sorted(in_file)
    for name, source in in_file.items():
        assert on_page[name] == source, f"{name} differs between docs/testing.md and test_brand.py"


def test_the_guide_shows_the_test_module_imports() -> None:
    """The page's import block is test_brand.py's imports."""
    in_file = _imports((TESTS / "test_brand.py").read_text())
    assert any(_imports(block) == in_file for block in _blocks("python"))


def test_the_guide_shows_the_conftest_fixtures() -> None:
    """The conftest.py shown on the page (a ```py block) is the file's, after its imports."""
    in_file = _functions((TESTS / "conftest.py").read_text())
    shown = [block for block in _blocks("py") if "def register_services" in block]
    assert len(shown) == 1
    on_page = _functions(shown[0])
    assert on_page == in_file
    source = (TESTS / "conftest.py").read_text()
    class_source = source[source.index("@dataclass"):source.index("def register_services")].rstrip()
    assert class_source in shown[0]
