"""Versioned, forward-only schema migrations, compiled per dialect from :mod:`stepwork.storage.schema`.

The applied versions are recorded in ``stepwork_migrations``, one row each. A new database gets the
whole current schema at once (every version recorded); a database at an earlier version gets the
upgrade of each later version, in order. Add a migration by changing the schema and appending a
version to ``_UPGRADES`` whose statements bring a database of the previous version to it; never
edit an applied one (``tests/storage/historical_schema.py`` keeps what each version created, and a
test upgrades from each).

An upgrade compiles the tables as :mod:`~stepwork.storage.schema` defines them now; when a later
version changes a table that an earlier upgrade creates (``workflow_definition`` in version 2), give
that earlier upgrade a frozen copy of the table as it was, so the later upgrade still applies.

SQLAlchemy is imported only when something is pending: opening an up-to-date database costs no
import (it takes ~150 ms and ~16 MB of memory, once per process).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import Dialect

__all__ = ["LATEST", "pending"]


def _create_all(dialect: Dialect) -> list[str]:
    from sqlalchemy.schema import CreateIndex, CreateTable

    from stepwork.storage.schema import METADATA

    statements: list[str] = []
    for table in METADATA.sorted_tables:
        statements.append(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)).strip())
        statements.extend(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect))
                          for index in sorted(table.indexes, key=lambda i: str(i.name)))
    # q's search table (not a SQLAlchemy table: per-dialect DDL), as version 9 keeps it
    return statements + _v6(dialect) + _v9(dialect)


def _v2(dialect: Dialect) -> list[str]:
    """Definition templates: their table, and the column naming an execution's template."""
    from sqlalchemy.schema import CreateColumn, CreateTable

    from stepwork.storage.schema import DEFINITIONS, EXECUTIONS

    column = CreateColumn(EXECUTIONS.c.definition_hash).compile(dialect=dialect)
    return [str(CreateTable(DEFINITIONS, if_not_exists=True).compile(dialect=dialect)).strip(),
            f"ALTER TABLE {EXECUTIONS.name} ADD COLUMN {column}"]


def _v3(dialect: Dialect) -> list[str]:
    """One schema on every database, as :mod:`~stepwork.storage.schema` defines it: on SQLite the step
    rows in their primary key's B-tree (``WITHOUT ROWID``); only the indexes the queries use (see
    the schema: five of Medusa's go, an index on ``created_at`` comes); the two indexes
    the very first version 1 created (on ``(workflow_id)`` and ``(workflow_id, transaction_id)``,
    which the primary key serves, and which cost each write) go, and so does the PostgreSQL-only
    ``DEFAULT now()`` of the time columns (SQLite never had it; every statement writes those times)."""
    from sqlalchemy.schema import CreateIndex

    from stepwork.storage.schema import DEFINITIONS, EXECUTIONS, MIGRATIONS_TABLE, TIMERS

    dropped = ("idx_wfe_workflow_id", "idx_wfe_workflow_transaction", "idx_wfe_deleted_at", "idx_wfe_state",
               "idx_wfe_run_id", "idx_wfe_retention_time_updated_at_state", "idx_wfe_updated_at_retention_time")
    statements = [f"DROP INDEX IF EXISTS {name}" for name in dropped]
    statements += [str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect))
                   for index in (*EXECUTIONS.indexes, *TIMERS.indexes)
                   if index.name in ("idx_wfe_created_at", "idx_wft_execution")]
    if dialect.name == "sqlite":
        # The step rows move into their primary key's B-tree (WITHOUT ROWID): SQLite cannot alter a
        # table so, so the table is made again and its rows copied.
        from sqlalchemy.schema import CreateTable

        from stepwork.storage.schema import STEPS

        create = str(CreateTable(STEPS).compile(dialect=dialect)).strip()
        columns = ", ".join(c.name for c in STEPS.columns)
        statements += [create.replace(f"TABLE {STEPS.name} ", f"TABLE {STEPS.name}_v3 ", 1),
                       f"INSERT INTO {STEPS.name}_v3 ({columns}) SELECT {columns} FROM {STEPS.name}",
                       f"DROP TABLE {STEPS.name}",
                       f"ALTER TABLE {STEPS.name}_v3 RENAME TO {STEPS.name}"]
    if dialect.name == "postgresql":
        times = [EXECUTIONS.c.created_at, EXECUTIONS.c.updated_at, DEFINITIONS.c.created_at,
                 MIGRATIONS_TABLE.c.applied_at]
        statements += [f"ALTER TABLE {c.table.name} ALTER COLUMN {c.name} DROP DEFAULT" for c in times]
    return statements


def _v4(dialect: Dialect) -> list[str]:
    """The HTTP admin API's keys: their table (secrets stored as SHA-256 only) and its unique index."""
    from sqlalchemy.schema import CreateIndex, CreateTable

    from stepwork.storage.schema import API_KEYS

    return [str(CreateTable(API_KEYS, if_not_exists=True).compile(dialect=dialect)).strip(),
            *(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect))
              for index in sorted(API_KEYS.indexes, key=lambda i: str(i.name)))]


def _v5(dialect: Dialect) -> list[str]:
    """The HTTP list route's indexes (W9): (state, created_at) replaces (state, updated_at), and
    (workflow_id, created_at, transaction_id, run_id) comes, both partial on live rows; on
    PostgreSQL, q's trigram index if ``pg_trgm`` can be had (see the schema)."""
    from sqlalchemy.schema import CreateIndex

    from stepwork.storage.schema import EXECUTIONS, POSTGRES_SEARCH_INDEX

    created = ("idx_wfe_state_created_at", "idx_wfe_workflow_created_at")
    return ["DROP INDEX IF EXISTS idx_wfe_state_updated_at",
            *(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect))
              for index in sorted(EXECUTIONS.indexes, key=lambda i: str(i.name)) if index.name in created),
            *([POSTGRES_SEARCH_INDEX] if dialect.name == "postgresql" else [])]


def _v6(dialect: Dialect) -> list[str]:
    """q's search table, filled with the live executions and kept by triggers (see
    :mod:`stepwork.storage.search`); on PostgreSQL it replaces version 5's trigram index. On an SQLite
    library without FTS5's ``trigram`` tokenizer nothing is created (q scans, as in version 5)."""
    from stepwork.storage.search import postgres_search_ddl, sqlite_search_ddl, sqlite_supports_search

    if dialect.name == "postgresql":
        return postgres_search_ddl()
    return sqlite_search_ddl() if sqlite_supports_search() else []


def _v7(dialect: Dialect) -> list[str]:
    """Queued runs: ``queued_at`` and ``priority`` on executions, and the partial index of the queue
    in claiming order (priority first, then queued time)."""
    from sqlalchemy.schema import CreateColumn, CreateIndex

    from stepwork.storage.schema import EXECUTIONS

    columns = [CreateColumn(EXECUTIONS.c[name]).compile(dialect=dialect) for name in ("queued_at", "priority")]
    return [*(f"ALTER TABLE {EXECUTIONS.name} ADD COLUMN {column}" for column in columns),
            *(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect))
              for index in EXECUTIONS.indexes if index.name == "idx_wfe_queue")]


def _v8(dialect: Dialect) -> list[str]:
    """Workers: the table of the engines sharing the database, kept by their heartbeats."""
    from sqlalchemy.schema import CreateTable

    from stepwork.storage.schema import WORKERS

    return [str(CreateTable(WORKERS, if_not_exists=True).compile(dialect=dialect)).strip()]


def _v9(dialect: Dialect) -> list[str]:
    """SQLite: q's FTS5 table written in batches (a pending table the insert trigger writes, moved into
    the FTS table by the store; see :func:`stepwork.storage.search.sqlite_pending_ddl`). Nothing on
    PostgreSQL, nor on an SQLite library without FTS5's ``trigram`` tokenizer (q scans there)."""
    from stepwork.storage.search import sqlite_pending_ddl, sqlite_supports_search

    if dialect.name == "sqlite" and sqlite_supports_search():
        return sqlite_pending_ddl()
    return []


# version -> the statements that bring a database at the previous version to it. Version 1 (the
# first tables and indexes) has no upgrade: a database without it is new and gets everything.
_UPGRADES: dict[int, Callable[[Dialect], list[str]]] = {2: _v2, 3: _v3, 4: _v4, 5: _v5, 6: _v6, 7: _v7, 8: _v8, 9: _v9}
LATEST = max(_UPGRADES)


def _dialect(name: str) -> Dialect:
    # The base dialects: compiling DDL needs no driver.
    from sqlalchemy.dialects.postgresql.base import PGDialect
    from sqlalchemy.dialects.sqlite.base import SQLiteDialect

    if name == "sqlite":
        return SQLiteDialect()
    if name == "postgresql":
        return PGDialect()  # type: ignore[no-untyped-call]  # (SQLAlchemy leaves its __init__ unannotated)
    raise ValueError(f"no migrations for the dialect {name!r}")


@cache
def _statements(dialect: str, version: int | None) -> tuple[str, ...]:
    """The DDL of one upgrade, or (``version=None``) of the whole schema; compiled once a process."""
    compiled = _dialect(dialect)
    return tuple(_create_all(compiled) if version is None else _UPGRADES[version](compiled))


def pending(dialect: str, applied: Collection[int]) -> list[tuple[int, tuple[str, ...]]]:
    """The versions to record, in order, each with the statements to run first, for a database of
    ``dialect`` (``"sqlite"`` or ``"postgresql"``) whose ``stepwork_migrations`` holds ``applied``
    (empty for a new database). Empty when the database is current."""
    if 1 not in applied:
        return [(1, _statements(dialect, None)), *((v, ()) for v in range(2, LATEST + 1))]
    return [(v, _statements(dialect, v)) for v in range(2, LATEST + 1) if v not in applied]
