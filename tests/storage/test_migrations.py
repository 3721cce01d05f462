"""Schema migrations: a database built at any earlier version, with the DDL that version ran
(``historical_schema.py``), upgrades to the latest when a store opens it, keeps its rows readable and
writable, and ends with the same schema as a new database; an up-to-date one opens without loading
SQLAlchemy."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

import stepwork
from stepwork.storage.base import ExecutionKey, ExecutionStore, ListQuery, StepRow, TimerRow
from stepwork.storage.migrations import LATEST
from stepwork.storage.postgres import PostgresStore
from stepwork.storage.query import normalize_filters, normalize_order
from stepwork.storage.sqlite import SQLiteStore
from tests.storage.conftest import BACKENDS, migration_versions, schema_url
from tests.storage.helpers import OWNER, T0, make_row, write
from tests.storage.historical_schema import HISTORIES, MIGRATIONS_TABLE, RECORD_VERSION

KEY = ExecutionKey("old-wf", "old-tx", "old-run")
CASES = [
    *(("sqlite", label) for label in HISTORIES["sqlite"] if any(b.startswith("sqlite") for b in BACKENDS)),
    *(("postgresql", label) for label in HISTORIES["postgresql"] if "postgres" in BACKENDS),
]


# -- building old databases -------------------------------------------------------------------------


def old_rows(dialect: str, version: int) -> list[tuple[str, tuple[Any, ...]]]:
    """A running execution with a step row and a timer, written as a store of ``version`` wrote them."""
    mark = "?" if dialect == "sqlite" else "%s"
    ts = mark if dialect == "sqlite" else "to_timestamp(%s)"
    k = (KEY.workflow_id, KEY.transaction_id, KEY.run_id)
    columns = ("id, workflow_id, transaction_id, run_id, execution, context, state, retention_time, created_at, "
               "updated_at, version, lease_owner, lease_expires_at, progress")
    values = [mark] * 8 + [ts, ts, mark, mark, ts, mark]
    params: tuple[Any, ...] = ("wf_exec_old", *k, '{"steps":{}}', '{"payload":{"n":1}}', "invoking", 60.0, T0, T0,
                               3, OWNER, T0 + 30, '{"cursor":2}')
    if version >= 2:
        columns += ", definition_hash"
        values.append(mark)
        params += ("hash-1",)
    rows = [(f"INSERT INTO workflow_execution ({columns}) VALUES ({', '.join(values)})", params),
            (f"INSERT INTO workflow_execution_step (workflow_id, transaction_id, run_id, step_index, record, output) "
             f"VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, {mark})", (*k, 0, '{"id":"a"}', '"out"')),
            (f"INSERT INTO workflow_timer (id, workflow_id, transaction_id, run_id, step_index, kind, due_at, data) "
             f"VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {ts}, {mark})",
             ("old-timer", *k, 0, "retry", T0, '{"attempt":1}'))]
    if version >= 2:
        rows.append((f"INSERT INTO workflow_definition (hash, workflow_id, template, created_at) "
                     f"VALUES ({mark}, {mark}, {mark}, {ts})", ("hash-1", KEY.workflow_id, '{"t":1}', T0)))
    return rows


def build_sqlite(path: Path, history: list[tuple[int, list[str]]]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(MIGRATIONS_TABLE["sqlite"])
        for version, statements in history:
            for statement in statements:
                conn.execute(statement)
            conn.execute(RECORD_VERSION["sqlite"], (version, time.time()))
        for statement, params in old_rows("sqlite", history[-1][0]):
            conn.execute(statement, params)
        conn.execute("COMMIT")
    finally:
        conn.close()


def build_postgres(url: str, history: list[tuple[int, list[str]]]) -> None:
    with psycopg.connect(url) as conn:  # one transaction, committed on leaving
        conn.execute(MIGRATIONS_TABLE["postgresql"])
        for version, statements in history:
            for statement in statements:
                conn.execute(statement)
            conn.execute(RECORD_VERSION["postgresql"], (version,))
        for statement, params in old_rows("postgresql", history[-1][0]):
            conn.execute(statement, params)


# -- describing a schema ----------------------------------------------------------------------------


def _normalized(ddl: str | None) -> str | None:
    # SQLite keeps each index's text as written: compare it without spacing, parentheses or IF NOT EXISTS.
    return None if ddl is None else re.sub(r"[\s()]+|IFNOTEXISTS", "", ddl.upper().replace("IF NOT EXISTS", ""))


def sqlite_schema(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {
            "columns": {t: conn.execute(f"PRAGMA table_info({t})").fetchall() for t in tables},
            # Tables whose rows live in their primary key's B-tree.
            "without_rowid": sorted(t for t in tables if "WITHOUT ROWID" in (conn.execute(
                "SELECT sql FROM sqlite_master WHERE name = ?", (t,)).fetchone()[0] or "").upper()),
            "indexes": sorted((r[0], r[1], _normalized(r[2])) for r in conn.execute(
                "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index'")),
            # (version 6: the triggers that keep q's search table)
            "triggers": sorted((r[0], r[1], _normalized(r[2])) for r in conn.execute(
                "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")),
        }
    finally:
        conn.close()


def postgres_schema(url: str, schema: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        columns = conn.execute(
            "SELECT table_name, ordinal_position, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = %s ORDER BY 1, 2", (schema,)).fetchall()
        indexes = conn.execute("SELECT tablename, indexname, replace(indexdef, %s, '') FROM pg_indexes "
                               "WHERE schemaname = %s ORDER BY 1, 2", (f"{schema}.", schema)).fetchall()
        constraints = conn.execute(
            "SELECT table_name, constraint_name, constraint_type FROM information_schema.table_constraints "
            "WHERE table_schema = %s AND constraint_type IN ('PRIMARY KEY', 'UNIQUE') ORDER BY 1, 2",
            (schema,)).fetchall()
        triggers = conn.execute(
            "SELECT event_object_table, trigger_name, event_manipulation, action_timing, action_condition, "
            "replace(action_statement, %s, '') FROM information_schema.triggers WHERE trigger_schema = %s "
            "ORDER BY 1, 2, 3", (f"{schema}.", schema)).fetchall()
        functions = conn.execute(
            "SELECT p.proname, replace(p.prosrc, %s, '') FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s ORDER BY 1", (schema, schema)).fetchall()
    return {"columns": columns, "indexes": indexes, "constraints": constraints, "triggers": triggers,
            "functions": functions}


# -- the databases ----------------------------------------------------------------------------------


class Databases:
    """Databases of one dialect, each new and empty: files for SQLite, schemas for PostgreSQL."""

    def __init__(self, dialect: str, tmp_path: Path, pg_url: str | None) -> None:
        self.dialect, self.tmp_path, self.pg_url = dialect, tmp_path, pg_url
        self.schemas: list[str] = []

    def new(self, name: str) -> str:
        """The path or URL of a new database."""
        if self.dialect == "sqlite":
            return str(self.tmp_path / f"{name}.db")
        assert self.pg_url is not None
        schema = f"mig_{name.replace('-', '_').replace('+', '_')}_{os.getpid()}"
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}").format(sql.Identifier(schema)))
        self.schemas.append(schema)
        return schema_url(self.pg_url, schema)

    def build(self, where: str, history: list[tuple[int, list[str]]]) -> None:
        (build_sqlite if self.dialect == "sqlite" else build_postgres)(Path(where) if self.dialect == "sqlite"
                                                                       else where, history)  # type: ignore[arg-type]

    def store(self, where: str) -> ExecutionStore:
        return SQLiteStore(where) if self.dialect == "sqlite" else PostgresStore(where)

    def schema(self, where: str) -> dict[str, Any]:
        if self.dialect == "sqlite":
            return sqlite_schema(Path(where))
        assert self.pg_url is not None
        return postgres_schema(self.pg_url, self.schemas[[schema_url(self.pg_url, s) for s in self.schemas]
                                                         .index(where)])

    def drop(self) -> None:
        if self.pg_url is None:
            return
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            for schema in self.schemas:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
async def databases(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Databases]:
    dialect = request.param
    dbs = Databases(dialect, tmp_path, request.getfixturevalue("pg_url") if dialect == "postgresql" else None)
    yield dbs
    dbs.drop()


async def opened(store: ExecutionStore) -> ExecutionStore:
    await store.open()
    return store


# -- tests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("databases", "history"), CASES, indirect=["databases"])
async def test_an_old_database_upgrades_to_the_latest_and_its_rows_stay_readable(
        databases: Databases, history: str) -> None:
    steps = HISTORIES[databases.dialect][history]
    old = databases.new(history)
    databases.build(old, steps)
    store = await opened(databases.store(old))
    try:
        assert await migration_versions(store) == list(range(1, LATEST + 1))
        row = await store.get(KEY)
        assert row is not None
        assert (row.id, row.state, row.version, row.lease_owner, row.progress, row.execution, row.context) == (
            "wf_exec_old", "invoking", 3, OWNER, {"cursor": 2}, {"steps": {}}, {"payload": {"n": 1}})
        assert (row.created_at, row.lease_expires_at, row.retention_time) == pytest.approx((T0, T0 + 30, 60.0))
        assert row.definition_hash == ("hash-1" if steps[-1][0] >= 2 else None)
        assert await store.latest(KEY.workflow_id, KEY.transaction_id) == row
        assert await store.steps(KEY) == [StepRow(0, {"id": "a"}, '"out"')]
        if steps[-1][0] >= 2:
            assert await store.get_definition("hash-1") == '{"t":1}'
        # q finds the old row (version 6 fills the search table from the rows already stored)
        found, count = await store.list_rows(ListQuery(normalize_filters({"q": "OLD-T"}), take=10,
                                                       order=normalize_order(None), with_records=False))
        assert ([r.id for r in found], count) == (["wf_exec_old"], 1)
        [timer] = await store.due_timers(T0 + 1, OWNER, 10, 30)
        assert (timer.id, timer.data) == ("old-timer", {"attempt": 1})

        # ...and writable: the running execution checkpoints, consuming its timer; a new one starts
        assert await store.write(KEY, OWNER, 3, state="done", progress={"cursor": 3}, steps=[StepRow(1, {"id": "b"})],
                                 lease_until=T0 + 60, now=T0 + 2, delete_timers=["old-timer"]) == 4
        assert await store.next_due() is None
        new = make_row(wf="old-wf", tx="new-tx")
        new.definition_hash = "hash-2"
        await store.put_definition("hash-2", "old-wf", '{"t":2}', T0)
        await store.insert(new, [StepRow(0, {"id": "a"})])
        await store.add_timer(TimerRow("new-timer", "old-wf", "new-tx", "run-1", "retry", T0))
        assert await write(store, new, 1) == 2
        assert await store.get_definition("hash-2") == '{"t":2}'
        found, count = await store.list_rows(ListQuery(normalize_filters({"q": "old-wf"}), take=10,
                                                       order=normalize_order(None), with_records=False))
        assert (sorted(r.transaction_id for r in found), count) == (["new-tx", "old-tx"], 2)
    finally:
        await store.close()

    fresh = databases.new("fresh")
    await (await opened(databases.store(fresh))).close()
    assert databases.schema(old) == databases.schema(fresh)


@pytest.mark.parametrize("databases", sorted({d for d, _ in CASES}), indirect=True)
async def test_opening_a_current_database_again_changes_nothing(databases: Databases) -> None:
    where = databases.new("current")
    first = await opened(databases.store(where))
    await first.insert(make_row(), [])
    await first.close()
    schema = databases.schema(where)
    again = await opened(databases.store(where))
    try:
        assert await migration_versions(again) == list(range(1, LATEST + 1))
        assert await again.get(make_row().key) == make_row()
    finally:
        await again.close()
    assert databases.schema(where) == schema


def _sqlalchemy_loaded_by_opening(path: Path) -> bool:
    code = ("import asyncio, sys\n"
            "from stepwork.storage.sqlite import SQLiteStore\n"
            f"store = SQLiteStore({str(path)!r})\n"
            "asyncio.run(store.open())\n"
            "print('sqlalchemy' in sys.modules)\n")
    src = str(Path(stepwork.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                         check=True)
    return {"True": True, "False": False}[out.stdout.strip()]


@pytest.mark.slow
async def test_sqlalchemy_is_loaded_only_to_migrate(tmp_path: Path) -> None:
    """Importing SQLAlchemy costs ~150 ms and ~16 MB: an engine opening a current database skips it."""
    path = tmp_path / "stepwork.db"
    assert await asyncio.to_thread(_sqlalchemy_loaded_by_opening, path)  # a new database: migrated
    assert not await asyncio.to_thread(_sqlalchemy_loaded_by_opening, path)  # current: not loaded
