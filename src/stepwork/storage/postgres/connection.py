"""The PostgreSQL connection: connecting, replacing a broken connection, errors, migrations.

Calls are serialized on the one connection with an :class:`asyncio.Lock`. A connection that breaks
is replaced on the next call; the call that saw it break gets a ``database_error``. Database errors
become ``StepworkError`` (``database_error``) with a readable message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow

from stepwork.errors import StepworkError
from stepwork.storage import migrations
from stepwork.storage.postgres.group_commit import GroupCommit
from stepwork.storage.postgres.wire import Row, Wire
from stepwork.storage.rows import already_started

__all__ = ["DB_ERROR", "Conn", "PostgresDatabase", "duplicate_is_conflict"]

T = TypeVar("T")
Conn = psycopg.AsyncConnection[TupleRow]

DB_ERROR = StepworkError.Types.DB_ERROR
# The key of the advisory lock that serializes migrations across processes ("stepwork" as a bigint).
_MIGRATION_LOCK = int.from_bytes(b"stepwork", "big")
_CONNECT_TIMEOUT = 10  # seconds, unless the URL sets connect_timeout


def _dsn(url: str) -> str:
    """``url`` as libpq takes it: SQLAlchemy-style ``postgresql+driver://`` prefixes are dropped."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.startswith("postgresql+"):
        return "postgresql://" + rest
    return url


def _where(dsn: str) -> str:
    """A description of the server ``dsn`` points at, without credentials."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "the configured URL"
    host = info.get("host") or info.get("hostaddr") or "the local socket"
    port = info.get("port") or "5432"
    dbname = info.get("dbname") or info.get("user") or ""
    return f"{host}:{port}/{dbname}"


def _message(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None)
    return f"PostgreSQL error ({sqlstate}): {text}" if sqlstate else f"PostgreSQL error: {text}"


@contextlib.contextmanager
def duplicate_is_conflict(transaction_id: str) -> Iterator[None]:
    """Inside: an insert that breaks the execution key's uniqueness is ``conflict``, as on SQLite."""
    try:
        yield
    except StepworkError as exc:
        if not isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
            raise
        raise already_started(transaction_id) from None


class PostgresDatabase:
    """One autocommit psycopg connection, used by one call at a time."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        """``url``: ``postgresql://user@host:port/db`` (``postgresql+psycopg://`` is accepted too)."""
        self.url = url
        self._dsn = _dsn(url)
        self._conn: Conn | None = None
        self._open = False
        self._lock = asyncio.Lock()
        self._wire = Wire()
        self.group_commit = GroupCommit(self)  # checkpoints of concurrent executions share commits

    async def open(self) -> None:
        """Connect and apply pending migrations (a no-op when open)."""
        async with self._lock:
            if self._open:
                return
            self._conn = await self._connect()
            self._open = True
            try:
                await self._guard(self._migrate)
            except BaseException:
                await self._drop_connection()
                self._open = False
                raise

    async def close(self) -> None:
        """Close the connection."""
        async with self._lock:
            self._open = False
            await self._drop_connection()

    async def _connect(self) -> Conn:
        kwargs: dict[str, Any] = {"autocommit": True}
        try:
            if "connect_timeout" not in conninfo_to_dict(self._dsn):
                kwargs["connect_timeout"] = _CONNECT_TIMEOUT
            return await psycopg.AsyncConnection.connect(self._dsn, **kwargs)
        except psycopg.Error as exc:
            text = " ".join(str(exc).split())
            raise StepworkError(DB_ERROR, f"Cannot connect to PostgreSQL at {_where(self._dsn)}: {text}") from None

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def _guard(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``fn`` on the connection (lock held); database errors become ``database_error``."""
        if not self._open:
            raise StepworkError(DB_ERROR, "The PostgreSQL store is not open; start the engine first.")
        if self._conn is None or self._conn.closed or self._conn.broken:
            await self._drop_connection()
            self._conn = await self._connect()
        conn = self._conn
        try:
            return await fn(conn)
        except psycopg.Error as exc:
            if conn.broken or conn.closed:
                await self._drop_connection()
            raise StepworkError(DB_ERROR, _message(exc)) from exc
        except UnicodeEncodeError as exc:
            # A str that UTF-8 cannot hold (a lone surrogate): psycopg raises it while encoding.
            raise StepworkError(DB_ERROR, f"PostgreSQL error: a text value cannot be encoded: {exc}") from exc
        except BaseException:
            # Cancelled (or failed) in the middle of an exchange: never reuse a connection left busy.
            if conn.info.transaction_status != TransactionStatus.IDLE:
                await self._drop_connection()
            raise

    async def _run(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        async with self._lock:
            return await self._guard(fn)

    async def _one(self, sql: str, params: Sequence[Any] | dict[str, Any], *, prepare: bool | None = None) -> Any:
        async def run(conn: Conn) -> Any:
            cur = await conn.execute(sql, params, prepare=prepare)
            return await cur.fetchone()
        return await self._run(run)

    async def _hot(self, sql: str, params: dict[str, Any]) -> Row | None:
        """The first row of a checkpoint statement sent on libpq directly (see :mod:`.wire`): text
        columns, as bytes. Sent alone if the connection is idle; otherwise in the next group commit
        with the other checkpoints waiting (see :mod:`.group_commit`), answered after its commit."""
        group = self.group_commit
        lock = self._lock
        if not group.idle() or lock.locked() or getattr(lock, "_waiters", None):  # busy, or calls queued
            return await group.submit(sql, params)

        async def run(conn: Conn) -> Row | None:
            return await self._wire.one(conn, sql, params)
        row = await self._run(run)
        group.alone += 1
        return row

    async def _all(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[TupleRow]:
        async def run(conn: Conn) -> list[TupleRow]:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()
        return await self._run(run)

    async def _exec(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> None:
        async def run(conn: Conn) -> None:
            await conn.execute(sql, params)
        await self._run(run)

    async def _migrate(self, conn: Conn) -> None:
        async with conn.transaction():
            # Engines starting together take turns; the second finds everything applied.
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur = await conn.execute("SELECT to_regclass('stepwork_migrations') IS NOT NULL")
            known = await cur.fetchone()
            applied: set[int] = set()
            if known is not None and known[0]:
                cur = await conn.execute("SELECT version FROM stepwork_migrations")
                applied = {int(r[0]) for r in await cur.fetchall()}
            for version, statements in migrations.pending("postgresql", applied):
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute("INSERT INTO stepwork_migrations (version, applied_at) VALUES (%s, now())",
                                   (version,))
