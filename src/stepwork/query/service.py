"""``Query``: ``await query.graph(entity=..., fields=[...], filters={...}, pagination={...})``.

The query reads the engine's database (or any database URL) through SQLAlchemy 2 with the sync
drivers the engine already uses (``sqlite3``, psycopg 3), each call in a worker thread
(``asyncio.to_thread``) so the event loop never waits on the database. The engine's in-memory SQLite
database (``sqlite://``) is one connection only the engine holds: a query over it uses that
connection, on the event loop's thread (statements of the engine's store never interleave with it).

SQLAlchemy is imported on the first query, not with this module: an engine registers a ``Query``
at start without paying for it unless someone queries.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stepwork.errors import StepworkError

if TYPE_CHECKING:
    import sqlalchemy as sa

    from stepwork.query.entities import EntityRegistry

__all__ = ["Query", "sqlalchemy_url"]

_INVALID = StepworkError.Types.INVALID_DATA
_MEMORY = ("sqlite://", "sqlite:///:memory:", "memory://")
_DEFAULT_SQLITE = ".stepwork/stepwork.db"


def sqlalchemy_url(database_url: str | None) -> str:
    """The SQLAlchemy URL of a stepwork database URL (``postgresql://`` → ``postgresql+psycopg://``,
    ``None`` → the engine's default SQLite file; a SQLite URL's options dropped)."""
    if database_url is None:
        return f"sqlite:///{_DEFAULT_SQLITE}"
    if database_url in _MEMORY:
        return "sqlite://"
    if database_url.startswith("sqlite:///"):
        return database_url.partition("?")[0]
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix):]
    raise StepworkError(_INVALID, f'Unsupported database_url "{database_url}" for a query. Use "sqlite:///path.db", '
                                  '"sqlite://" or "postgresql://user@host/db".')


class _Borrowed:
    """Another owner's ``sqlite3`` connection lent to SQLAlchemy: closing it is left to the owner."""

    def __init__(self, get: Callable[[], sqlite3.Connection]) -> None:
        self._get = get

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)

    def close(self) -> None:
        """Closing is the owner's job."""


class Query:
    """Reads entities: the engine's ``workflow_execution`` always, and the models added.

    ``Query(database_url=None, *, models=())``; ``Query.for_engine(engine)`` reads an engine's own
    database (what ``WorkflowEngine.start`` registers as ``Modules.QUERY``). ``add_models`` adds
    SQLAlchemy mapped classes (an application adds its modules' models).
    """

    def __init__(self, database_url: str | None = None, *, models: Iterable[type[Any]] = (),
                 connection: Callable[[], sqlite3.Connection] | None = None) -> None:
        """``connection``: a function returning an open ``sqlite3`` connection to use instead of
        connecting (an engine's in-memory database); queries then run on the calling thread."""
        self.database_url = database_url
        self._url = sqlalchemy_url(database_url) if connection is None else "sqlite://"
        self._connection = connection
        self._models: list[type[Any]] = list(models)
        self._registry: EntityRegistry | None = None
        self._engine: sa.Engine | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_engine(cls, engine: Any, *, models: Iterable[type[Any]] = ()) -> Query:
        """A query over a ``WorkflowEngine``'s database (its SQLite file, its in-memory database, or
        its PostgreSQL database)."""
        store = engine.store
        if getattr(store, "dialect", None) == "sqlite":
            path = str(store.path)
            if path in (":memory:", ""):
                return cls(models=models, connection=lambda: store.conn)
            return cls(f"sqlite:///{path}", models=models)
        return cls(engine.database_url, models=models)

    # -- entities ------------------------------------------------------------------------------

    def add_models(self, models: Iterable[type[Any]]) -> None:
        """Make SQLAlchemy mapped classes queryable, by table name and snake-case class name."""
        models = list(models)
        with self._lock:
            if self._registry is not None:
                self._registry.add(models)
            self._models.extend(models)

    def _entities(self) -> EntityRegistry:
        with self._lock:
            if self._registry is None:
                from stepwork.query.entities import EntityRegistry

                self._registry = EntityRegistry(self._models)
            return self._registry

    def entities(self) -> list[str]:
        """The names of the queryable entities, sorted."""
        return self._entities().names()

    # -- the database ----------------------------------------------------------------------------

    @property
    def sqlalchemy_engine(self) -> sa.Engine:
        """The SQLAlchemy engine the query reads through (created on first use)."""
        with self._lock:
            if self._engine is None:
                self._engine = self._create_engine()
            return self._engine

    def _create_engine(self) -> sa.Engine:
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool, StaticPool

        if self._connection is not None:
            get = self._connection
            return sa.create_engine("sqlite://", creator=lambda: _Borrowed(get), poolclass=NullPool)
        if self._url == "sqlite://":
            return sa.create_engine(self._url, poolclass=StaticPool, connect_args={"check_same_thread": False})
        if self._url.startswith("sqlite"):
            return sa.create_engine(self._url, connect_args={"timeout": 30.0})
        return sa.create_engine(self._url, pool_pre_ping=True, pool_size=2, max_overflow=8)

    @property
    def runs_inline(self) -> bool:
        """True when queries run on the calling thread (a borrowed in-memory connection)."""
        return self._connection is not None

    def close(self) -> None:
        """Close the query's connections (a borrowed connection stays open)."""
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    # -- graph -------------------------------------------------------------------------------------

    async def graph(self, entity: str, fields: Sequence[str] | None = None, filters: Mapping[str, Any] | None = None,
                    pagination: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``{"data": [...], "metadata": {"count", "skip", "take"}}``: the rows of ``entity`` matching
        ``filters``, with ``fields`` (dot paths into relations), a page of them (``pagination``:
        ``skip``, ``take``, ``order`` such as ``{"name": "DESC"}``). Unknown entities, fields,
        relations and operators raise ``StepworkError`` (``invalid_data``) naming them."""
        if self.runs_inline:
            return self.graph_sync(entity, fields, filters, pagination)
        return await asyncio.to_thread(self.graph_sync, entity, fields, filters, pagination)

    def graph_sync(self, entity: str, fields: Sequence[str] | None = None, filters: Mapping[str, Any] | None = None,
                   pagination: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """:meth:`graph` without an event loop (blocking)."""
        from stepwork.query.run import run_graph

        return run_graph(self.sqlalchemy_engine, self._entities(), entity, fields, filters, pagination)

    def __repr__(self) -> str:
        where = "the engine's in-memory database" if self._connection is not None else self._url
        return f"Query({where})"
