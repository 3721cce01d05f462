"""Store fixtures: every test in this package runs on each backend (SQLite in memory, SQLite in a
file, PostgreSQL), so the stores are held to the same behaviour.

The settings are the suite's (see ``tests/conftest.py``): ``STEPWORK_TEST_BACKENDS`` selects the
backends (comma-separated: ``sqlite-memory``, ``sqlite-file``, ``postgres``; all by default) and
``STEPWORK_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``) names the
PostgreSQL maintenance database. The session creates a throwaway database
``stepwork_test_<pid>_<random>`` there and drops it at the end, so parallel runs never see each
other's rows. If the server is unreachable the PostgreSQL tests fail (they are never skipped).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from stepwork.storage.base import ExecutionStore
from stepwork.storage.postgres import PostgresStore
from stepwork.storage.sqlite import SQLiteStore

ADMIN_URL = os.environ.get("STEPWORK_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = [b.strip() for b in os.environ.get("STEPWORK_TEST_BACKENDS", "sqlite-memory,sqlite-file,postgres")
            .split(",") if b.strip()]

StoreFactory = Callable[[], Awaitable[ExecutionStore]]


def _with_dbname(url: str, dbname: str) -> str:
    return urlsplit(url)._replace(path="/" + dbname).geturl()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test session (dropped at the end)."""
    name = f"stepwork_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
    else:
        reason = ""
    if reason:
        info = conninfo_to_dict(ADMIN_URL)
        pytest.fail(f"PostgreSQL is unreachable at {info.get('host')}:{info.get('port', 5432)}: {reason}. "
                    "Start it with scripts/services.sh, point STEPWORK_TEST_PG_URL at a server, or leave "
                    "postgres out of STEPWORK_TEST_BACKENDS.", pytrace=False)
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield _with_dbname(ADMIN_URL, name)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def reset_postgres(url: str) -> None:
    """Empty the store's tables (tests of one session share the database)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT to_regclass('workflow_execution') IS NOT NULL")
        if (await cur.fetchone()) == (True,):  # not yet created: nothing to empty
            await conn.execute("TRUNCATE workflow_execution, workflow_execution_step, workflow_timer")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test."""
    return str(request.param)


@pytest.fixture
async def make_store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """A factory of opened stores sharing one database (for ``sqlite-memory``, each is its own)."""
    opened: list[ExecutionStore] = []
    url = request.getfixturevalue("pg_url") if backend == "postgres" else ""
    if url:
        await reset_postgres(url)

    async def make() -> ExecutionStore:
        store: ExecutionStore
        if backend == "sqlite-memory":
            store = SQLiteStore(":memory:")
        elif backend == "sqlite-file":
            store = SQLiteStore(str(tmp_path / "stepwork.db"))
        elif backend == "postgres":
            store = PostgresStore(url)
        else:
            raise ValueError(f"unknown backend {backend!r} in STEPWORK_TEST_BACKENDS")
        await store.open()
        opened.append(store)
        return store
    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> ExecutionStore:
    """An opened, empty store of the backend under test."""
    return await make_store()


async def migration_versions(store: ExecutionStore) -> list[int]:
    """The versions recorded in ``stepwork_migrations``, in order (one row each)."""
    if isinstance(store, SQLiteStore):
        return [r[0] for r in store.conn.execute("SELECT version FROM stepwork_migrations ORDER BY version")]
    assert isinstance(store, PostgresStore)
    async with await psycopg.AsyncConnection.connect(store.url, autocommit=True) as conn:
        cur = await conn.execute("SELECT version FROM stepwork_migrations ORDER BY version")
        return [int(r[0]) for r in await cur.fetchall()]


def schema_url(url: str, schema: str) -> str:
    """``url`` with ``search_path`` set to ``schema``."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"options": f"-csearch_path={schema}"})) if q)
    return parts._replace(query=query).geturl()
