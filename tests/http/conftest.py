"""A real stepwork server for the HTTP tests: uvicorn on a free loopback port, in a thread of this
process, serving ``create_app`` over an engine on SQLite (a file) or PostgreSQL (a throwaway
database per session), with API keys made through ``ApiKeys`` like ``stepwork keys create`` does.

One server per test module and backend (tests use their own transaction ids, so they share it).
``STEPWORK_TEST_BACKENDS`` selects the backends as for the rest of the suite (``sqlite-file`` and
``postgres`` apply here).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

import tests.http.workflows  # noqa: F401  (registers the workflows the tests run)
from stepwork.engine.engine import WorkflowEngine
from stepwork.http import ApiKeys, create_app
from tests.conftest import BACKENDS, throwaway_pg_database

STATIC_KEY = "static-test-key-" + "x" * 16
HTTP_BACKENDS = [b for b in ("sqlite", "postgres") if ("sqlite-file" if b == "sqlite" else b) in BACKENDS]


class Captured(logging.Handler):
    """Every log record of the server's run, formatted (to check what is never logged)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def server_lines(self) -> list[str]:
        """What the server logged (not the test's own client, httpx, which logs the URLs it asks)."""
        return [line for line in self.lines if line.startswith(("uvicorn", "stepwork", "asyncio", "root"))]


@dataclass
class Served:
    """A running server: where it is, its database, a valid key, and the server's log."""

    base_url: str
    database_url: str
    key: str
    key_id: str
    keys: ApiKeys
    log: Captured
    sqlite_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def client(self, key: str | None = "default", **kwargs: Any) -> httpx.AsyncClient:
        """An httpx client of the server, sending ``key`` (the valid one by default) as Bearer."""
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {self.key if key == 'default' else key}"
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30.0, **kwargs)


class ServerThread:
    """uvicorn serving ``app`` on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, access_log=True, lifespan="on", ws="none",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start (see the log above)")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()
        assert not self.thread.is_alive(), "the test server did not stop within 30 s"


@pytest.fixture(scope="session")
def http_pg_url() -> Iterator[str]:
    """A PostgreSQL database of the HTTP tests' own."""
    with throwaway_pg_database("stepwork_http") as url:
        yield url


def serve(database_url: str, tmp: Path, sqlite_path: Path | None, **options: Any) -> Iterator[Served]:
    """Start a server on ``database_url``; yield it; stop it."""
    setup_keys = ApiKeys(database_url)
    info, secret = asyncio.run(setup_keys.create("tests"))
    asyncio.run(setup_keys.close())
    server_keys = ApiKeys(database_url, cache_ttl=0.3)
    engine = WorkflowEngine(database_url, poll_interval=0.05)
    setup = options.pop("setup", None)
    app = create_app(engine, keys=server_keys, static_keys=[STATIC_KEY], wait_timeout=options.pop("wait", 1.0),
                     **options)
    if setup is not None:
        setup(app)
    log = Captured()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(log)
    root.setLevel(logging.DEBUG)
    try:
        with ServerThread(app) as running:
            yield Served(f"http://127.0.0.1:{running.port}", database_url, secret, info.id, server_keys, log,
                         sqlite_path, {"engine": engine})
    finally:
        root.removeHandler(log)
        root.setLevel(old_level)
        asyncio.run(server_keys.close())


@pytest.fixture(scope="module", params=HTTP_BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A running server on the backend under test (one per module and backend)."""
    tmp = tmp_path_factory.mktemp("http")
    if request.param == "sqlite":
        path = tmp / "stepwork.db"
        yield from serve(f"sqlite:///{path}", tmp, path)
    else:
        yield from serve(str(request.getfixturevalue("http_pg_url")), tmp, None)


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the server with the valid key."""
    async with served.client() as c:
        yield c


@pytest.fixture
def tx(request: pytest.FixtureRequest) -> str:
    """A transaction id unique to this test."""
    return f"tx-{request.node.name.replace('[', '-').replace(']', '')}-{time.monotonic_ns()}"


async def eventually(check: Any, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``check()`` (a coroutine function) until it returns a truthy value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: last value {value!r}")
        await asyncio.sleep(interval)
