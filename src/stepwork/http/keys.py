"""API keys of the HTTP admin API: created, listed, revoked and verified in the engine's database.

A key's secret (``"sk_" + 43 URL-safe characters``, 256 random bits) is shown once, by
:meth:`ApiKeys.create`; the database keeps only its SHA-256 (table ``stepwork_api_key``, schema
version 4) and its first characters (``prefix``) to tell keys apart. Verifications that succeed are
cached for ``cache_ttl`` seconds (5 by default), so a request does not read the database each time:
a key revoked by another process (``stepwork keys revoke``) stops working within that time; revoked
through the same :class:`ApiKeys`, at once. Unknown keys are remembered for ``cache_ttl`` seconds
too (at most ``NEGATIVE_CACHE_SIZE`` of them), so a client repeating a wrong key does not read the
database each time; a key created through another process is valid within that time. A key's
``last_used_at`` is written at most once a minute (``LAST_USED_EVERY``), so requests seldom take
the database's write lock.

The database is the engine's: its URL is resolved by :func:`stepwork.engine.setup.open_store`.

The store is SQLAlchemy Core on a synchronous engine, run in a worker thread: keys are not a hot path.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import sqlalchemy as sa

from stepwork.engine.ids import new_ulid
from stepwork.engine.setup import open_store
from stepwork.errors import StepworkError
from stepwork.storage.schema import API_KEYS, METADATA
from stepwork.storage.sqlite import SQLiteStore

__all__ = ["LAST_USED_EVERY", "NEGATIVE_CACHE_SIZE", "SECRET_PREFIX", "ApiKeyInfo", "ApiKeys", "hash_secret",
           "static_keys_from_env"]

SECRET_PREFIX = "sk_"
LAST_USED_EVERY = 60.0
NEGATIVE_CACHE_SIZE = 1000
_SHOWN = 10  # characters of a secret kept in clear as its prefix ("sk_" + 7)
_SQLITE_WAIT = 30.0  # seconds a locked SQLite database is waited for when its URL sets no busy_timeout
T = TypeVar("T")


def static_keys_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """The keys of ``STEPWORK_API_KEYS`` (comma-separated; blanks ignored)."""
    raw = (os.environ if environ is None else environ).get("STEPWORK_API_KEYS", "")
    return [key.strip() for key in raw.split(",") if key.strip()]


def hash_secret(secret: str) -> str:
    """The hex SHA-256 of a secret: what the database keeps, and what a request's key is looked up by."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ApiKeyInfo:
    """A stored key, without its secret."""

    id: str
    name: str
    prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    @property
    def revoked(self) -> bool:
        """True once the key was revoked."""
        return self.revoked_at is not None


def _sqlalchemy_url(database_url: str | None) -> tuple[str, dict[str, Any], bool]:
    """The SQLAlchemy URL, engine options, and whether it is an in-memory database, for a stepwork
    database URL: resolved by the engine's own :func:`open_store`, so keys and executions always
    share one database."""
    store = open_store(database_url)  # raises the engine's own error for an unsupported URL
    if isinstance(store, SQLiteStore):
        if store.path == ":memory:":
            return "sqlite://", {"poolclass": sa.pool.StaticPool, "connect_args": {"check_same_thread": False}}, True
        timeout = store.busy_timeout if store.busy_timeout is not None else _SQLITE_WAIT
        return f"sqlite:///{store.path}", {"connect_args": {"timeout": timeout}}, False
    url = str(getattr(store, "url", database_url))
    for scheme in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):], {"pool_pre_ping": True}, False
    raise StepworkError(StepworkError.Types.INVALID_DATA, f'Unsupported database_url "{database_url}".')


class ApiKeys:
    """The API keys kept in a stepwork database (``None``: the engine's default SQLite file).

    ``ApiKeys(database_url=None, *, cache_ttl=5.0)``. Every method is a coroutine; the table is
    created (the engine's migrations applied) on first use.
    """

    def __init__(self, database_url: str | None = None, *, cache_ttl: float = 5.0) -> None:
        self.database_url = database_url
        self.cache_ttl = float(cache_ttl)
        self._url, self._options, self._memory = _sqlalchemy_url(database_url)
        self._engine: sa.Engine | None = None
        self._ready = asyncio.Lock()
        self._cache: dict[str, tuple[ApiKeyInfo, float]] = {}  # sha256 -> (key, valid until, monotonic)
        self._unknown: OrderedDict[str, float] = OrderedDict()  # sha256 -> unknown until (monotonic)
        self._used_written: dict[str, float] = {}  # key id -> when last_used_at was written (monotonic)

    # -- the database -----------------------------------------------------------------------------

    async def _db(self) -> sa.Engine:
        async with self._ready:
            if self._engine is None:
                if not self._memory:
                    # Opening the engine's store applies its migrations (and makes the default file).
                    store = open_store(self.database_url)
                    await store.open()
                    await store.close()
                engine = sa.create_engine(self._url, **self._options)
                if self._memory:  # a database of its own, for the process's life
                    await asyncio.to_thread(METADATA.create_all, engine, [API_KEYS])
                self._engine = engine
            return self._engine

    async def _run(self, fn: Callable[[sa.Connection], T]) -> T:
        engine = await self._db()

        def work() -> T:
            with engine.begin() as conn:
                return fn(conn)
        return await asyncio.to_thread(work)

    def _time(self, epoch: float) -> Any:
        return epoch if self._url.startswith("sqlite") else dt.datetime.fromtimestamp(epoch, dt.UTC)

    @staticmethod
    def _when(value: Any) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return dt.datetime.fromtimestamp(float(value), dt.UTC)

    def _info(self, row: Any) -> ApiKeyInfo:
        created = self._when(row.created_at)
        assert created is not None
        return ApiKeyInfo(row.id, row.name, row.prefix, created, self._when(row.revoked_at),
                          self._when(row.last_used_at))

    # -- the operations ---------------------------------------------------------------------------

    async def create(self, name: str) -> tuple[ApiKeyInfo, str]:
        """A new key named ``name``: its record, and its secret (shown this once, never stored)."""
        if not isinstance(name, str) or not name.strip() or len(name) > 256:
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f"A key's name must be a non-empty string of at most 256 characters, got {name!r}.")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        key_id = "apk_" + new_ulid()
        now = time.time()

        def insert(conn: sa.Connection) -> None:
            conn.execute(API_KEYS.insert().values(id=key_id, name=name, prefix=secret[:_SHOWN],
                                                  secret_sha256=hash_secret(secret), created_at=self._time(now)))
        await self._run(insert)
        return ApiKeyInfo(key_id, name, secret[:_SHOWN], dt.datetime.fromtimestamp(now, dt.UTC), None, None), secret

    async def list(self) -> list[ApiKeyInfo]:
        """Every key, revoked ones included, oldest first."""
        rows = await self._run(lambda conn: conn.execute(
            sa.select(API_KEYS).order_by(API_KEYS.c.created_at, API_KEYS.c.id)).all())
        return [self._info(row) for row in rows]

    async def revoke(self, key_id: str) -> ApiKeyInfo:
        """Revoke a key (at once here; within ``cache_ttl`` seconds in other processes). Revoking a
        revoked key changes nothing; an unknown id raises ``StepworkError`` (``not_found``)."""
        now = self._time(time.time())

        def revoke(conn: sa.Connection) -> Any:
            conn.execute(API_KEYS.update().where(API_KEYS.c.id == key_id, API_KEYS.c.revoked_at.is_(None))
                         .values(revoked_at=now))
            return conn.execute(sa.select(API_KEYS).where(API_KEYS.c.id == key_id)).first()
        row = await self._run(revoke)
        if row is None:
            raise StepworkError(StepworkError.Types.NOT_FOUND,
                                f'No API key with id "{key_id}"; `stepwork keys list` shows the ids.')
        self._cache = {h: entry for h, entry in self._cache.items() if entry[0].id != key_id}
        return self._info(row)

    async def verify(self, secret: str) -> ApiKeyInfo | None:
        """The key whose secret this is, if it exists and is not revoked; else ``None``."""
        if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX) or len(secret) > 256:
            return None
        digest = hash_secret(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        unknown_until = self._unknown.get(digest)
        if unknown_until is not None:
            if unknown_until > now:
                return None
            del self._unknown[digest]
        used = time.time()

        def find(conn: sa.Connection) -> tuple[Any, bool]:
            row: Any = conn.execute(sa.select(API_KEYS).where(API_KEYS.c.secret_sha256 == digest,
                                                              API_KEYS.c.revoked_at.is_(None))).first()
            last = self._used_written.get(row.id, float("-inf")) if row is not None else now
            written = row is not None and now - last >= LAST_USED_EVERY
            if written:
                conn.execute(API_KEYS.update().where(API_KEYS.c.id == row.id).values(last_used_at=self._time(used)))
            return row, written
        row, written = await self._run(find)
        if row is None:
            self._cache.pop(digest, None)
            self._unknown[digest] = now + self.cache_ttl
            while len(self._unknown) > NEGATIVE_CACHE_SIZE:
                self._unknown.popitem(last=False)
            return None
        if written:
            if len(self._used_written) > 10_000:
                self._used_written.clear()
            self._used_written[row.id] = now
        info = self._info(row)
        if written:
            info = replace(info, last_used_at=self._when(self._time(used)))
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[digest] = (info, now + self.cache_ttl)
        return info

    async def close(self) -> None:
        """Release the database connections."""
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await asyncio.to_thread(engine.dispose)
