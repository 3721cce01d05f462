"""SQLite store: the default (a file at ``./.stepwork/stepwork.db``), or ``:memory:``.

Uses the standard ``sqlite3`` module directly on the event loop thread: a checkpoint commit in WAL
mode with ``synchronous=NORMAL`` costs microseconds, while a thread hop per call (what aiosqlite
does) costs ~100 µs. Writes take the write lock up front (``BEGIN IMMEDIATE``); "database is
locked" is retried with a backoff (yielding to the loop) and never surfaced, up to a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from stepwork.errors import StepworkError
from stepwork.storage.base import (
    ExecutionKey,
    ExecutionRow,
    FinishData,
    LeaseLostError,
    ListQuery,
    StepRow,
    TimerRow,
)
from stepwork.storage.migrations import MIGRATIONS
from stepwork.storage.query import to_sql
from stepwork.storage.rows import execution_row, json_text

__all__ = ["SQLiteStore"]

T = TypeVar("T")
_FINISHED = ("done", "failed", "reverted")
_COLUMNS = ("id, workflow_id, transaction_id, run_id, state, execution, context, retention_time, created_at, "
            "updated_at, deleted_at, version, lease_owner, lease_expires_at, progress, definition_hash")
_UPSERT_STEP = (
    "INSERT INTO workflow_execution_step (workflow_id, transaction_id, run_id, step_index, record, output, "
    "compensate_input, compensate_output) VALUES (?,?,?,?,?,?,?,?) "
    "ON CONFLICT (workflow_id, transaction_id, run_id, step_index) DO UPDATE SET record = excluded.record, "
    "output = excluded.output, compensate_input = excluded.compensate_input, "
    "compensate_output = excluded.compensate_output")
_FENCED_UPSERT_STEP = (
    "INSERT INTO workflow_execution_step (workflow_id, transaction_id, run_id, step_index, record, output, "
    "compensate_input, compensate_output) SELECT ?,?,?,?,?,?,?,? WHERE EXISTS (SELECT 1 FROM workflow_execution "
    "WHERE workflow_id = ? AND transaction_id = ? AND run_id = ? AND version = ? AND lease_owner = ?) "
    "ON CONFLICT (workflow_id, transaction_id, run_id, step_index) DO UPDATE SET record = excluded.record, "
    "output = excluded.output, compensate_input = excluded.compensate_input, "
    "compensate_output = excluded.compensate_output")
_LOCK_DEADLINE = 30.0  # seconds of "database is locked" before giving up with a database_error


class SQLiteStore:
    """An :class:`~stepwork.storage.base.ExecutionStore` on SQLite."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StepworkError(StepworkError.Types.DB_ERROR, "The SQLite store is not open; start the engine first.")
        return self._conn

    async def open(self) -> None:
        if self._conn is not None:
            return
        if self.path != ":memory:":
            directory = os.path.dirname(os.path.abspath(self.path))  # noqa: ASYNC240 - once, at start
            os.makedirs(directory, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 50")
        if self.path != ":memory:":
            await self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
        conn.execute("PRAGMA synchronous = NORMAL")
        # Fold the WAL back into the database less often than every 1,000 pages (each fold costs
        # ~15% of checkpoint throughput); the engine's timer loop also folds it when idle.
        conn.execute("PRAGMA wal_autocheckpoint = 8000")
        self._conn = conn
        await self._migrate()

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- plumbing ---------------------------------------------------------------------------------

    async def _retry(self, fn: Callable[[], T]) -> T:
        deadline = time.monotonic() + _LOCK_DEADLINE
        delay = 0.001
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                message = str(exc)
                if ("locked" not in message and "busy" not in message) or time.monotonic() > deadline:
                    raise StepworkError(StepworkError.Types.DB_ERROR, f"SQLite error: {message}") from exc
            except (sqlite3.DatabaseError, UnicodeError) as exc:
                raise StepworkError(StepworkError.Types.DB_ERROR, f"SQLite error: {exc}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self.conn

        def run() -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
        return await self._retry(run)

    async def _migrate(self) -> None:
        def apply(conn: sqlite3.Connection) -> None:
            conn.execute("CREATE TABLE IF NOT EXISTS stepwork_migrations (version INTEGER PRIMARY KEY, "
                         "applied_at REAL NOT NULL)")
            done = {r[0] for r in conn.execute("SELECT version FROM stepwork_migrations")}
            for version, statements in MIGRATIONS["sqlite"]:
                if version in done:
                    continue
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO stepwork_migrations (version, applied_at) VALUES (?, ?)",
                             (version, time.time()))
        await self._tx(apply)

    # -- executions -------------------------------------------------------------------------------

    async def insert(self, row: ExecutionRow, steps: Sequence[StepRow]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    f"INSERT INTO workflow_execution ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (row.id, row.workflow_id, row.transaction_id, row.run_id, row.state,
                     json_text(row.execution), json_text(row.context),
                     row.retention_time, row.created_at, row.updated_at, row.deleted_at, row.version,
                     row.lease_owner, row.lease_expires_at, json_text(row.progress), row.definition_hash))
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" not in str(exc):
                    raise
                raise StepworkError(StepworkError.Types.CONFLICT,
                                    f"Transaction already started for transaction_id: {row.transaction_id}") from None
            if steps:
                self._upsert_steps(conn, row.key, steps)
        await self._tx(run)

    @staticmethod
    def _upsert_steps(conn: sqlite3.Connection, key: ExecutionKey, steps: Sequence[StepRow]) -> None:
        rows = [(key.workflow_id, key.transaction_id, key.run_id, s.index, json_text(s.record), s.output,
                 s.compensate_input, s.compensate_output) for s in steps]
        if len(rows) == 1:
            conn.execute(_UPSERT_STEP, rows[0])
        else:
            conn.executemany(_UPSERT_STEP, rows)

    async def latest(self, workflow_id: str, transaction_id: str) -> ExecutionRow | None:
        r = await self._retry(lambda: self.conn.execute(
            f"SELECT {_COLUMNS} FROM workflow_execution WHERE workflow_id = ? AND transaction_id = ? "
            "AND deleted_at IS NULL ORDER BY created_at DESC, run_id DESC LIMIT 1",
            (workflow_id, transaction_id)).fetchone())
        return None if r is None else execution_row(r)

    async def get(self, key: ExecutionKey) -> ExecutionRow | None:
        r = await self._retry(lambda: self.conn.execute(
            f"SELECT {_COLUMNS} FROM workflow_execution WHERE workflow_id = ? AND transaction_id = ? AND run_id = ?",
            (key.workflow_id, key.transaction_id, key.run_id)).fetchone())
        return None if r is None else execution_row(r)

    async def get_by_id(self, execution_id: str) -> ExecutionRow | None:
        r = await self._retry(lambda: self.conn.execute(
            f"SELECT {_COLUMNS} FROM workflow_execution WHERE id = ? AND deleted_at IS NULL",
            (execution_id,)).fetchone())
        return None if r is None else execution_row(r)

    async def steps(self, key: ExecutionKey) -> list[StepRow]:
        rows = await self._retry(lambda: self.conn.execute(
            "SELECT step_index, record, output, compensate_input, compensate_output FROM workflow_execution_step "
            "WHERE workflow_id = ? AND transaction_id = ? AND run_id = ? ORDER BY step_index",
            (key.workflow_id, key.transaction_id, key.run_id)).fetchall())
        return [StepRow(r[0], json.loads(r[1]), r[2], r[3], r[4]) for r in rows]

    async def write(self, key: ExecutionKey, owner: str, version: int, *, state: str | None,
                    progress: Any, steps: Sequence[StepRow], lease_until: float | None,
                    finish: FinishData | None = None, now: float) -> int:
        k = (key.workflow_id, key.transaction_id, key.run_id)

        if state is None and progress is None and finish is None and lease_until is not None and steps:
            # Only step rows changed: upsert them fenced on the lease (version and owner), without
            # touching the execution's row. The version moves only when the lease changes hands.
            def upsert_only(conn: sqlite3.Connection) -> int:
                changed = 0
                for s in steps:
                    cur = conn.execute(_FENCED_UPSERT_STEP, (*k, s.index, json_text(s.record), s.output,
                                                             s.compensate_input, s.compensate_output,
                                                             *k, version, owner))
                    changed += cur.rowcount
                if changed != len(steps):
                    raise self._lost(key)
                return version
            return await self._tx(upsert_only)

        def run(conn: sqlite3.Connection) -> int:
            if finish is not None and finish.delete:
                cur = conn.execute("DELETE FROM workflow_execution WHERE workflow_id = ? AND transaction_id = ? "
                                   "AND run_id = ? AND version = ? AND lease_owner = ?", (*k, version, owner))
                if cur.rowcount != 1:
                    raise self._lost(key)
                conn.execute("DELETE FROM workflow_execution_step WHERE workflow_id = ? AND transaction_id = ? "
                             "AND run_id = ?", k)
                conn.execute("DELETE FROM workflow_timer WHERE workflow_id = ? AND transaction_id = ? "
                             "AND run_id = ?", k)
                return version + 1
            if finish is not None:
                cur = conn.execute(
                    "UPDATE workflow_execution SET state = ?, progress = ?, version = version + 1, updated_at = ?, "
                    "lease_owner = NULL, lease_expires_at = NULL, execution = COALESCE(?, execution), "
                    "context = COALESCE(?, context), "
                    "expires_at = CASE WHEN retention_time IS NULL THEN NULL ELSE ? + retention_time END "
                    "WHERE workflow_id = ? AND transaction_id = ? AND run_id = ? AND version = ? AND lease_owner = ?",
                    (state, json_text(progress), now, json_text(finish.execution), json_text(finish.context),
                     now, *k, version, owner))
            elif lease_until is None:  # suspending: release the lease
                cur = conn.execute(
                    "UPDATE workflow_execution SET state = ?, progress = ?, version = version + 1, updated_at = ?, "
                    "lease_owner = NULL, lease_expires_at = NULL "
                    "WHERE workflow_id = ? AND transaction_id = ? AND run_id = ? AND version = ? AND lease_owner = ?",
                    (state, json_text(progress), now, *k, version, owner))
            elif state is None:
                # A checkpoint within one state: only unindexed columns change (no index to update), and
                # the lease stays as it is (the renewal loop extends it).
                cur = conn.execute(
                    "UPDATE workflow_execution SET progress = COALESCE(?, progress), version = version + 1 "
                    "WHERE workflow_id = ? AND transaction_id = ? AND run_id = ? AND version = ? AND lease_owner = ?",
                    (json_text(progress), *k, version, owner))
            else:
                cur = conn.execute(
                    "UPDATE workflow_execution SET progress = ?, version = version + 1, state = ?, updated_at = ? "
                    "WHERE workflow_id = ? AND transaction_id = ? AND run_id = ? AND version = ? AND lease_owner = ?",
                    (json_text(progress), state, now, *k, version, owner))
            if cur.rowcount != 1:
                raise self._lost(key)
            if steps:
                self._upsert_steps(conn, key, steps)
            if finish is not None:
                conn.execute("DELETE FROM workflow_timer WHERE workflow_id = ? AND transaction_id = ? "
                             "AND run_id = ?", k)
            return version + 1
        return await self._tx(run)

    @staticmethod
    def _lost(key: ExecutionKey) -> LeaseLostError:
        return LeaseLostError(f'Execution "{key.workflow_id}" / "{key.transaction_id}" was taken over by another '
                              "process (its lease expired); this process stops driving it.")

    async def acquire(self, key: ExecutionKey, owner: str, lease_until: float, now: float, *,
                      include_done: bool = False) -> int | None:
        states = ("failed", "reverted") if include_done else _FINISHED

        def run(conn: sqlite3.Connection) -> int | None:
            r = conn.execute(
                "UPDATE workflow_execution SET lease_owner = ?, lease_expires_at = ?, version = version + 1 "
                "WHERE workflow_id = ? AND transaction_id = ? AND run_id = ? "
                f"AND state NOT IN {states} AND deleted_at IS NULL "
                "AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < ?) RETURNING version",
                (owner, lease_until, key.workflow_id, key.transaction_id, key.run_id, owner, now)).fetchone()
            return None if r is None else int(r[0])
        return await self._tx(run)

    async def release(self, key: ExecutionKey, owner: str) -> None:
        await self._tx(lambda conn: conn.execute(
            "UPDATE workflow_execution SET lease_owner = NULL, lease_expires_at = NULL WHERE workflow_id = ? "
            "AND transaction_id = ? AND run_id = ? AND lease_owner = ?",
            (key.workflow_id, key.transaction_id, key.run_id, owner)))

    async def fold_wal(self) -> None:
        """Copy what the write-ahead log holds into the database file, without blocking writers."""
        await self._retry(lambda: self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())

    async def abandon(self, key: ExecutionKey, owner: str) -> None:
        await self._tx(lambda conn: conn.execute(
            "UPDATE workflow_execution SET lease_owner = ? WHERE workflow_id = ? AND transaction_id = ? "
            "AND run_id = ? AND lease_owner = ?",
            (f"abandoned:{owner}", key.workflow_id, key.transaction_id, key.run_id, owner)))

    async def renew(self, owner: str, lease_until: float) -> None:
        await self._tx(lambda conn: conn.execute(
            "UPDATE workflow_execution SET lease_expires_at = ? WHERE lease_owner = ?", (lease_until, owner)))

    async def orphans(self, now: float, limit: int) -> list[ExecutionKey]:
        rows = await self._retry(lambda: self.conn.execute(
            "SELECT workflow_id, transaction_id, run_id FROM workflow_execution WHERE lease_owner IS NOT NULL "
            f"AND lease_expires_at < ? AND state NOT IN {_FINISHED} AND deleted_at IS NULL LIMIT ?",
            (now, limit)).fetchall())
        return [ExecutionKey(*r) for r in rows]

    async def list_rows(self, query: ListQuery) -> tuple[list[ExecutionRow], int]:
        params: list[Any] = []

        def param(value: Any) -> str:
            params.append(value)
            return "?"
        where = to_sql(dict(query.filters), param, lambda c: c, "LIKE")
        order = ", ".join(f"{c} {d}" for c, d in query.order) or "created_at ASC"
        limit = -1 if query.take is None else int(query.take)
        conn = self.conn
        count = (await self._retry(lambda: conn.execute(
            f"SELECT COUNT(*) FROM workflow_execution WHERE {where}", params).fetchone()))[0]
        rows = await self._retry(lambda: conn.execute(
            f"SELECT {_COLUMNS} FROM workflow_execution WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, int(query.skip)]).fetchall())
        return [execution_row(r, query.with_records) for r in rows], int(count)

    async def finish_children(self, keys: Sequence[ExecutionKey], retention_time: float | None, now: float) -> None:
        def run(conn: sqlite3.Connection) -> None:
            for key in keys:
                k = (key.workflow_id, key.transaction_id, key.run_id)
                state = conn.execute("SELECT state FROM workflow_execution WHERE workflow_id = ? AND "
                                     "transaction_id = ? AND run_id = ?", k).fetchone()
                if state is None or state[0] not in _FINISHED:
                    continue  # unfinished executions are never removed
                if retention_time is None:
                    for table in ("workflow_execution_step", "workflow_timer", "workflow_execution"):
                        conn.execute(f"DELETE FROM {table} WHERE workflow_id = ? AND transaction_id = ? "
                                     "AND run_id = ?", k)
                else:
                    conn.execute("UPDATE workflow_execution SET retention_time = ?, expires_at = ? "
                                 "WHERE workflow_id = ? AND transaction_id = ? AND run_id = ?",
                                 (retention_time, now + retention_time, *k))
        await self._tx(run)

    async def put_definition(self, definition_hash: str, workflow_id: str, template: str, now: float) -> None:
        await self._tx(lambda conn: conn.execute(
            "INSERT INTO workflow_definition (hash, workflow_id, template, created_at) VALUES (?,?,?,?) "
            "ON CONFLICT (hash) DO NOTHING", (definition_hash, workflow_id, template, now)))

    async def get_definition(self, definition_hash: str) -> str | None:
        r = await self._retry(lambda: self.conn.execute(
            "SELECT template FROM workflow_definition WHERE hash = ?", (definition_hash,)).fetchone())
        return None if r is None else str(r[0])

    async def clear(self) -> None:
        def run(conn: sqlite3.Connection) -> None:
            for table in ("workflow_execution_step", "workflow_timer", "workflow_execution"):
                conn.execute(f"DELETE FROM {table}")
        await self._tx(run)

    async def delete_expired(self, now: float) -> int:
        def run(conn: sqlite3.Connection) -> int:
            keys = conn.execute(
                "SELECT workflow_id, transaction_id, run_id FROM workflow_execution "
                f"WHERE expires_at IS NOT NULL AND expires_at <= ? AND state IN {_FINISHED}", (now,)).fetchall()
            for k in keys:
                conn.execute("DELETE FROM workflow_execution_step WHERE workflow_id = ? AND transaction_id = ? "
                             "AND run_id = ?", k)
                conn.execute("DELETE FROM workflow_execution WHERE workflow_id = ? AND transaction_id = ? "
                             "AND run_id = ?", k)
            return len(keys)
        return await self._tx(run)

    # -- timers -----------------------------------------------------------------------------------

    async def add_timer(self, timer: TimerRow, *, replace: bool = True) -> None:
        conflict = ("DO UPDATE SET due_at = excluded.due_at, data = excluded.data, claimed_by = NULL, "
                    "claimed_until = NULL") if replace else "DO NOTHING"
        await self._tx(lambda conn: conn.execute(
            "INSERT INTO workflow_timer (id, workflow_id, transaction_id, run_id, step_index, kind, due_at, data) "
            f"VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (id) {conflict}",
            (timer.id, timer.workflow_id, timer.transaction_id, timer.run_id, timer.step_index, timer.kind,
             timer.due_at, json.dumps(timer.data))))

    async def due_timers(self, now: float, owner: str, limit: int, claim_for: float) -> list[TimerRow]:
        def run(conn: sqlite3.Connection) -> list[TimerRow]:
            rows = conn.execute(
                "SELECT id, workflow_id, transaction_id, run_id, kind, due_at, step_index, data FROM workflow_timer "
                "WHERE due_at <= ? AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY due_at LIMIT ?",
                (now, now, limit)).fetchall()
            for r in rows:
                conn.execute("UPDATE workflow_timer SET claimed_by = ?, claimed_until = ? WHERE id = ?",
                             (owner, now + claim_for, r[0]))
            return [TimerRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7])) for r in rows]
        return await self._tx(run)

    async def delete_timer(self, timer_id: str) -> None:
        await self._tx(lambda conn: conn.execute("DELETE FROM workflow_timer WHERE id = ?", (timer_id,)))

    async def delete_timers(self, key: ExecutionKey, kind: str | None = None) -> None:
        sql = "DELETE FROM workflow_timer WHERE workflow_id = ? AND transaction_id = ? AND run_id = ?"
        args: list[Any] = [key.workflow_id, key.transaction_id, key.run_id]
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        await self._tx(lambda conn: conn.execute(sql, args))

    async def next_due(self) -> float | None:
        r = await self._retry(lambda: self.conn.execute("SELECT MIN(due_at) FROM workflow_timer").fetchone())
        return None if r is None or r[0] is None else float(r[0])
