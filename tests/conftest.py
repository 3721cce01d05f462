"""Shared fixtures. Workflows register by name process-wide, so every test names its own."""

from __future__ import annotations

import re

import pytest


@pytest.fixture
def wf_name(request: pytest.FixtureRequest) -> str:
    """A workflow name unique to this test (its node id, made name-safe)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.nodeid)


# -- the storage backends every engine test runs on ------------------------------------------------
# STEPWORK_TEST_BACKENDS selects them (comma-separated): sqlite-memory, sqlite-file, postgres.
# `make test` runs all three; PostgreSQL gets a throwaway database per test session.

import contextlib  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
from collections.abc import AsyncIterator, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

BACKENDS = [b.strip() for b in os.environ.get("STEPWORK_TEST_BACKENDS", "sqlite-memory,sqlite-file,postgres")
            .split(",") if b.strip()]
PG_ADMIN_URL = os.environ.get("STEPWORK_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def throwaway_pg_database(prefix: str) -> Iterator[str]:
    """The URL of a new PostgreSQL database, dropped (with its connections) when the block ends."""
    import psycopg

    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc}); `make test` starts it, or set "
                    "STEPWORK_TEST_BACKENDS to leave it out.")
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A PostgreSQL database of this test session's own, dropped at the end."""
    with throwaway_pg_database("stepwork_test") as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of one storage backend (the test runs once per backend)."""
    backend = request.param
    if backend == "sqlite-memory":
        return "sqlite://"
    if backend == "sqlite-file":
        return f"sqlite:///{tmp_path / 'stepwork.db'}"
    if backend == "postgres":
        return str(request.getfixturevalue("pg_database_url"))
    raise ValueError(f"unknown backend {backend!r} in STEPWORK_TEST_BACKENDS")


class FakeClock:
    """A wall clock the test moves by hand (the engine reads time only through its clock)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A fake wall clock for the engine."""
    return FakeClock()


@pytest.fixture
async def engine(database_url: str, clock: FakeClock) -> AsyncIterator[object]:
    """A started engine on the backend under test, with a fake clock and fast polling."""
    from stepwork.engine.engine import WorkflowEngine

    async with WorkflowEngine(database_url, poll_interval=0.02, lease_ttl=5.0, clock=clock) as eng:
        yield eng


@pytest.fixture(autouse=True)
def _workflows_defined_in_a_test_end_with_it() -> Iterator[None]:
    """Workflows a test defines (scheduled ones, say) are unregistered after it."""
    from stepwork.engine.registry import registered_workflows, unregister_workflow

    before = set(registered_workflows())
    yield
    for name in set(registered_workflows()) - before:
        unregister_workflow(name)
