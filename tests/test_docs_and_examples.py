"""The documentation's code snippets and the brand demo run, and say what they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_docs_snippet_runs_and_prints_what_the_page_says() -> None:
    """docs/check_snippets.py runs each page's Python blocks and checks their `# expected` outputs."""
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "check_snippets.py")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_brand_demo_shows_a_success_and_a_rollback() -> None:
    """`make demo`'s program exits 0 and reports the rolled-back run as reverted."""
    proc = subprocess.run([sys.executable, "-m", "examples.brand.demo"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reverted" in proc.stdout
    assert "Every run ended as expected." in proc.stdout
