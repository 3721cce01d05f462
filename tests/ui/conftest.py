"""Browser tests of the admin page: Debian's Chromium driven by Playwright against a real server.

One server per module and backend (the server of ``tests/http/conftest.py``: uvicorn on a
loopback port, the engine on SQLite or a throwaway PostgreSQL database), one browser per module,
a fresh browser context (no cookies) per test. Screenshots go to ``test-output/ui/`` (git-ignored)
at 1280 and 390 pixels wide.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import tests.ui.workflows  # noqa: F401  (registers the workflows the tests run)
from tests.http.conftest import HTTP_BACKENDS, Served, serve

BASE = "/admin/workflows-executions"
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "ui"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module", params=HTTP_BACKENDS)
def ui_served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A running server on the backend under test, one per module and backend (stopped with its module,
    so no server outlives tests/ui)."""
    tmp = tmp_path_factory.mktemp("ui")
    if request.param == "sqlite":
        path = tmp / "stepwork.db"
        yield from _off_the_browsers_loop(serve(f"sqlite:///{path}", tmp, path))
    else:
        from tests.conftest import throwaway_pg_database

        with throwaway_pg_database("stepwork_ui") as url:
            yield from _off_the_browsers_loop(serve(url, tmp, None))


def _off_the_browsers_loop(server: Iterator[Served]) -> Iterator[Served]:
    """Start and stop a server in another thread: Playwright's sync API keeps an event loop in this one,
    where the server's set-up (``asyncio.run``) cannot run."""
    def step() -> Served | None:
        box: list[Served | None] = []
        thread = threading.Thread(target=lambda: box.append(next(server, None)))
        thread.start()
        thread.join(120)
        assert box, "the test server did not start or stop within 120 s"
        return box[0]
    served = step()
    assert served is not None
    try:
        yield served
    finally:
        step()


@pytest.fixture(scope="module")
def backend(ui_served: Served) -> str:
    """``sqlite`` or ``postgres``: the backend of the server under test."""
    return "sqlite" if ui_served.sqlite_path is not None else "postgres"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, one per module."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Chromium is not installed: `apt-get install -y chromium` (make test does it).")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Browsing:
    """A browser context of one test, with helpers to log in and to see what the page logged."""

    def __init__(self, context: Any, served: Served) -> None:
        self.context = context
        self.served = served
        self.page = context.new_page()
        self.problems: list[str] = []  # script errors, failed loads, CSP reports, alert() calls
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))
        self.page.on("console", lambda m: self.problems.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.set_default_timeout(10_000)

    def url(self, path: str) -> str:
        """An absolute URL of the server."""
        return self.served.base_url + path

    def login(self, path: str = "/app/settings/workflows") -> Any:
        """Open ``path`` (landing on the login form), log in with the valid key, land on ``path``."""
        self.page.goto(self.url(path))
        self.page.fill("#key", self.served.key)
        self.page.click("form.stack button[type=submit]")
        self.page.wait_for_url(f"**{path.split('?')[0]}*")
        return self.page

    def shot(self, name: str, backend: str, width: int, height: int = 900, full_page: bool = True) -> Path:
        """A screenshot at ``width`` pixels: test-output/ui/{backend}/{name}-{width}.png. Full page, but for
        an open dialog only the window (its backdrop covers the window, not a full page's length)."""
        self.page.set_viewport_size({"width": width, "height": height})
        path = SHOTS / backend / f"{name}-{width}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def browsing(browser: Any, ui_served: Served) -> Iterator[Browsing]:
    """A fresh context (no cookies) in the module's browser, 1280 × 900."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield Browsing(context, ui_served)
    finally:
        context.close()


def api(served: Served) -> httpx.Client:
    """A synchronous client of the server's admin API with the valid key."""
    return httpx.Client(base_url=served.base_url, headers={"Authorization": f"Bearer {served.key}"}, timeout=30.0)


def run(served: Served, workflow: str, payload: Any, transaction_id: str) -> dict[str, Any]:
    """Start a run through the API; its acknowledgement."""
    with api(served) as client:
        r = client.post(f"{BASE}/{workflow}/run", json={"input": payload, "transaction_id": transaction_id})
        assert r.status_code == 200, r.text
        return dict(r.json()["acknowledgement"])


def execution_id(served: Served, workflow: str, transaction_id: str) -> str:
    """The id of the latest run of a transaction."""
    with api(served) as client:
        r = client.get(f"{BASE}/{workflow}/{transaction_id}")
        assert r.status_code == 200, r.text
        return str(r.json()["workflow_execution"]["id"])


@pytest.fixture
def tx(request: pytest.FixtureRequest) -> str:
    """A transaction id unique to this test."""
    import time

    return f"ui-{request.node.name.replace('[', '-').replace(']', '')}-{time.monotonic_ns()}"


PAGED = 45  # executions of ui-paged, the list tests' own
PAGED_FAILED = 5


@pytest.fixture(scope="module")
def paged(ui_served: Served) -> int:
    """45 executions of ``ui-paged`` (5 of them failed and reverted), stored once per server."""
    with api(ui_served) as client:
        for n in range(PAGED):
            body = {"input": {"n": n, "fail": n % 9 == 4}, "transaction_id": f"ui-page-{n:03d}"}
            r = client.post(f"{BASE}/ui-paged/run", json=body)
            assert r.status_code == 200, r.text
    return PAGED
