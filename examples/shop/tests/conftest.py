"""The shop served for real: uvicorn on a free loopback port (in a thread), on a SQLite file and on a
throwaway PostgreSQL database, one server per test module and backend."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from examples.shop.app import make_app
from examples.shop.cms import Cms
from examples.shop.subscribers.brand_created import WELCOME_NOTES
from stepwork import App
from tests.conftest import BACKENDS, throwaway_pg_database

KEY = "sk_shop_tests_" + "k" * 16
SHOP_BACKENDS = [b for b in ("sqlite", "postgres") if ("sqlite-file" if b == "sqlite" else b) in BACKENDS]


@dataclass
class Shop:
    """A running shop: its address, its App, the fake CMS and the subscriber's notes."""

    base_url: str
    app: App
    cms: Cms
    notes: list[str]

    def client(self, admin: bool = False) -> httpx.Client:
        """An HTTP client of the shop (with the admin API key when ``admin``)."""
        headers = {"Authorization": f"Bearer {KEY}"} if admin else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)


@pytest.fixture(scope="module", params=SHOP_BACKENDS)
def shop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """The shop application served over HTTP on the backend under test."""
    if request.param == "sqlite":
        yield from _serve(f"sqlite:///{tmp_path_factory.mktemp('shop') / 'shop.db'}")
    else:
        with throwaway_pg_database("stepwork_shop") as url:
            yield from _serve(url)


def _serve(url: str) -> Iterator[Shop]:
    app = make_app(url)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app.asgi(static_keys=[KEY]), log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_started(server, thread)
        yield Shop(f"http://127.0.0.1:{sock.getsockname()[1]}", app, app.resolve("cms"), app.resolve(WELCOME_NOTES))
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the shop's server did not start (see the log above)")
        time.sleep(0.01)

