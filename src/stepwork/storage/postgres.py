"""PostgreSQL store: psycopg 3 (async), one connection per store, autocommit.

Mirrors :mod:`stepwork.storage.sqlite` statement for statement; what differs is how it is done:

- Every write is **one statement, one round trip**. A checkpoint is a CTE that runs the fenced
  ``UPDATE ... RETURNING version`` and upserts the step rows (and, on finish, deletes the timers)
  only if that update matched; in autocommit mode a single statement is its own transaction, so
  there is no ``BEGIN``/``COMMIT`` round trip. Checkpoint statements are prepared on first use.
- Times are ``TIMESTAMPTZ`` columns; records carry epoch-second floats, converted with
  ``to_timestamp(...)`` on the way in and ``extract(epoch from ...)`` on the way out. The columns
  hold microseconds, so a time read back is the float rounded to the microsecond.
- JSON documents are ``TEXT`` (``\\u0000`` and integers of any size round-trip exactly).
- Text is ordered with ``COLLATE "C"`` (byte order), as SQLite orders it.
- Calls are serialized on the connection with an :class:`asyncio.Lock`. A connection that breaks is
  replaced on the next call; the call that saw it break gets a ``database_error``.

Database errors become ``StepworkError`` (``database_error``) with a readable message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow

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

__all__ = ["PostgresStore"]

T = TypeVar("T")
Conn = psycopg.AsyncConnection[TupleRow]

_DB_ERROR = StepworkError.Types.DB_ERROR
_FINISHED = "('done', 'failed', 'reverted')"
_FINISHED_BUT_DONE = "('failed', 'reverted')"
# The key of the advisory lock that serializes migrations across processes ("stepwork" as a bigint).
_MIGRATION_LOCK = int.from_bytes(b"stepwork", "big")
_CONNECT_TIMEOUT = 10  # seconds, unless the URL sets connect_timeout
_MAX_VALUES_ROWS = 8  # steps in one checkpoint written from a VALUES list; more travel as arrays
_TEXT_ORDER_COLUMNS = frozenset({"id", "workflow_id", "transaction_id", "run_id", "state"})


def _epoch(column: str) -> str:
    return f"extract(epoch from {column})::float8"


_COLUMNS = ("id, workflow_id, transaction_id, run_id, state, {records}, retention_time, "
            f"{_epoch('created_at')}, {_epoch('updated_at')}, {_epoch('deleted_at')}, version, lease_owner, "
            f"{_epoch('lease_expires_at')}, progress, definition_hash")
_SELECT = "SELECT " + _COLUMNS.format(records="execution, context") + " FROM workflow_execution"
_KEY = "workflow_id = %(wf)s AND transaction_id = %(tx)s AND run_id = %(run)s"
_FENCE = f"{_KEY} AND version = %(version)s AND lease_owner = %(owner)s"
_TS = "to_timestamp(%({})s::float8)"


def _steps_source(count: int) -> str:
    """Where the step rows come from: a ``VALUES`` list for a few (the common case, and ~40 µs a
    checkpoint cheaper than arrays), arrays (``unnest``) for more, so the statement texts stay few."""
    if count > _MAX_VALUES_ROWS:
        return ("unnest(%(s_index)s::int[], %(s_record)s::text[], %(s_output)s::text[], %(s_cin)s::text[], "
                "%(s_cout)s::text[])")
    rows = ", ".join(f"(%(i{n})s::int, %(r{n})s::text, %(o{n})s::text, %(ci{n})s::text, %(co{n})s::text)"
                     for n in range(count))
    return f"(VALUES {rows})"


def _upsert_steps(gate: str, count: int) -> str:
    """The upsert of ``count`` step rows, run only if ``gate`` (a CTE name) returned a row."""
    return (
        "INSERT INTO workflow_execution_step (workflow_id, transaction_id, run_id, step_index, record, output, "
        "compensate_input, compensate_output) "
        f"SELECT %(wf)s, %(tx)s, %(run)s, s.i, s.r, s.o, s.ci, s.co FROM {_steps_source(count)} AS s(i, r, o, ci, co) "
        f"WHERE EXISTS (SELECT 1 FROM {gate}) "
        "ON CONFLICT (workflow_id, transaction_id, run_id, step_index) DO UPDATE SET record = excluded.record, "
        "output = excluded.output, compensate_input = excluded.compensate_input, "
        "compensate_output = excluded.compensate_output")


def _delete_where_gate(table: str, gate: str) -> str:
    return f"DELETE FROM {table} WHERE {_KEY} AND EXISTS (SELECT 1 FROM {gate})"


_INSERT = (
    "INSERT INTO workflow_execution (id, workflow_id, transaction_id, run_id, state, execution, context, "
    "retention_time, created_at, updated_at, deleted_at, version, lease_owner, lease_expires_at, progress, "
    "definition_hash) "
    "VALUES (%(id)s, %(wf)s, %(tx)s, %(run)s, %(state)s, %(execution)s, %(context)s, %(retention)s::float8, "
    f"{_TS.format('created')}, {_TS.format('updated')}, {_TS.format('deleted')}, %(version)s, %(owner)s, "
    f"{_TS.format('lease_until')}, %(progress)s, %(definition_hash)s)")


@cache
def _insert_sql(count: int) -> str:
    if not count:
        return _INSERT
    return f"WITH ins AS ({_INSERT} RETURNING 1), st AS ({_upsert_steps('ins', count)}) SELECT 1"


# The header update of a checkpoint, by kind (what the SQLite store does, statement for statement).
_UPDATE = {
    # A checkpoint within one state (``state=None``): only unindexed columns change, so the update is
    # HOT (no index entry written), and the lease stays as it is (the renewal loop extends it).
    "same_state": ("UPDATE workflow_execution SET progress = COALESCE(%(progress)s, progress), "
                   "version = version + 1"),
    # A checkpoint that moves the state: updated_at moves with it; the lease stays.
    "checkpoint": ("UPDATE workflow_execution SET progress = %(progress)s, version = version + 1, "
                   f"state = %(state)s, updated_at = {_TS.format('now')}"),
    # Suspending: release the lease.
    "release": ("UPDATE workflow_execution SET state = %(state)s, progress = %(progress)s, version = version + 1, "
                f"updated_at = {_TS.format('now')}, lease_owner = NULL, lease_expires_at = NULL"),
    # Finishing: release the lease, start the retention clock, replace the records if given.
    "finish": ("UPDATE workflow_execution SET state = %(state)s, progress = %(progress)s, version = version + 1, "
               f"updated_at = {_TS.format('now')}, lease_owner = NULL, lease_expires_at = NULL, "
               "execution = COALESCE(%(execution)s::text, execution), context = COALESCE(%(context)s::text, context), "
               "expires_at = to_timestamp(%(now)s::float8 + retention_time)"),
}


@cache
def _write_sql(count: int, kind: str) -> str:
    """The checkpoint statement of ``kind`` for ``count`` step rows (counts above the ``VALUES``
    limit share one)."""
    parts = [f"upd AS ({_UPDATE[kind]} WHERE {_FENCE} RETURNING version)"]
    if count:
        parts.append(f"st AS ({_upsert_steps('upd', count)})")
    if kind == "finish":
        parts.append(f"tm AS ({_delete_where_gate('workflow_timer', 'upd')})")
    return "WITH " + ", ".join(parts) + " SELECT version FROM upd"


_WRITE_DELETE = (
    f"WITH del AS (DELETE FROM workflow_execution WHERE {_FENCE} RETURNING version), "
    f"st AS ({_delete_where_gate('workflow_execution_step', 'del')}), "
    f"tm AS ({_delete_where_gate('workflow_timer', 'del')}) "
    "SELECT version + 1 FROM del")


def _acquire_sql(states: str) -> str:
    return (f"UPDATE workflow_execution SET lease_owner = %(owner)s, lease_expires_at = {_TS.format('lease_until')}, "
            f"version = version + 1 WHERE {_KEY} AND state NOT IN {states} AND deleted_at IS NULL "
            f"AND (lease_owner IS NULL OR lease_owner = %(owner)s OR lease_expires_at < {_TS.format('now')}) "
            "RETURNING version")


_ACQUIRE = _acquire_sql(_FINISHED)
_ACQUIRE_INCLUDE_DONE = _acquire_sql(_FINISHED_BUT_DONE)

_DELETE_EXPIRED = (
    "WITH d AS (DELETE FROM workflow_execution WHERE expires_at IS NOT NULL AND expires_at <= "
    f"to_timestamp(%s::float8) AND state IN {_FINISHED} RETURNING workflow_id, transaction_id, run_id), "
    "st AS (DELETE FROM workflow_execution_step s USING d WHERE s.workflow_id = d.workflow_id "
    "AND s.transaction_id = d.transaction_id AND s.run_id = d.run_id) "
    "SELECT count(*) FROM d")

_TIMER_COLUMNS = "id, workflow_id, transaction_id, run_id, kind, {due}, step_index, data"
_ADD_TIMER = (
    "INSERT INTO workflow_timer (id, workflow_id, transaction_id, run_id, step_index, kind, due_at, data) "
    "VALUES (%s, %s, %s, %s, %s, %s, to_timestamp(%s::float8), %s) ON CONFLICT (id) DO UPDATE SET "
    "due_at = excluded.due_at, data = excluded.data, claimed_by = NULL, claimed_until = NULL")
_DUE_TIMERS = (
    "WITH c AS (SELECT id FROM workflow_timer WHERE due_at <= to_timestamp(%(now)s::float8) "
    "AND (claimed_until IS NULL OR claimed_until < to_timestamp(%(now)s::float8)) "
    "ORDER BY due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED), "
    "u AS (UPDATE workflow_timer t SET claimed_by = %(owner)s, claimed_until = to_timestamp(%(until)s::float8) "
    "FROM c WHERE t.id = c.id RETURNING t.*) "
    f"SELECT {_TIMER_COLUMNS.format(due=_epoch('due_at'))} FROM u ORDER BY due_at, id COLLATE \"C\"")


def _steps(steps: Sequence[StepRow]) -> tuple[int, dict[str, Any]]:
    """The statement's step count (its cache key) and the step parameters."""
    # One row per index, the last one winning (as SQLite's executemany of upserts does): an
    # ``ON CONFLICT DO UPDATE`` cannot touch the same row twice in one statement.
    rows = list({s.index: s for s in steps}.values()) if len(steps) > 1 else list(steps)
    if len(rows) > _MAX_VALUES_ROWS:
        return _MAX_VALUES_ROWS + 1, {
            "s_index": [s.index for s in rows],
            "s_record": [json_text(s.record) for s in rows],
            "s_output": [s.output for s in rows],
            "s_cin": [s.compensate_input for s in rows],
            "s_cout": [s.compensate_output for s in rows],
        }
    params: dict[str, Any] = {}
    for n, s in enumerate(rows):
        params[f"i{n}"] = s.index
        params[f"r{n}"] = json_text(s.record)
        params[f"o{n}"] = s.output
        params[f"ci{n}"] = s.compensate_input
        params[f"co{n}"] = s.compensate_output
    return len(rows), params


def _key_params(key: ExecutionKey) -> dict[str, Any]:
    return {"wf": key.workflow_id, "tx": key.transaction_id, "run": key.run_id}


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


def _time_param(params: list[Any]) -> Callable[[Any], str]:
    """The ``param`` function for :func:`to_sql`: validated time operands are the only floats (text
    filters take strings), and are compared as timestamps so the time columns' indexes serve."""
    def param(value: Any) -> str:
        params.append(value)
        return "to_timestamp(%s::float8)" if isinstance(value, float) else "%s"
    return param


def _order_item(column: str, direction: str) -> str:
    collate = ' COLLATE "C"' if column in _TEXT_ORDER_COLUMNS else ""
    return f"{column}{collate} {direction}"


class PostgresStore:
    """An :class:`~stepwork.storage.base.ExecutionStore` on PostgreSQL (psycopg 3, async)."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self._dsn = _dsn(url)
        self._conn: Conn | None = None
        self._open = False
        self._lock = asyncio.Lock()

    # -- connection -------------------------------------------------------------------------------

    async def open(self) -> None:
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
            raise StepworkError(_DB_ERROR, f"Cannot connect to PostgreSQL at {_where(self._dsn)}: {text}") from None

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def _guard(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``fn`` on the connection (lock held); database errors become ``database_error``."""
        if not self._open:
            raise StepworkError(_DB_ERROR, "The PostgreSQL store is not open; start the engine first.")
        if self._conn is None or self._conn.closed or self._conn.broken:
            await self._drop_connection()
            self._conn = await self._connect()
        conn = self._conn
        try:
            return await fn(conn)
        except psycopg.Error as exc:
            if conn.broken or conn.closed:
                await self._drop_connection()
            raise StepworkError(_DB_ERROR, _message(exc)) from exc
        except UnicodeEncodeError as exc:
            # A str that UTF-8 cannot hold (a lone surrogate): psycopg raises it while encoding.
            raise StepworkError(_DB_ERROR, f"PostgreSQL error: a text value cannot be encoded: {exc}") from exc
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
            await conn.execute("CREATE TABLE IF NOT EXISTS stepwork_migrations (version INTEGER PRIMARY KEY, "
                               "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            cur = await conn.execute("SELECT version FROM stepwork_migrations")
            done = {r[0] for r in await cur.fetchall()}
            for version, statements in MIGRATIONS["postgresql"]:
                if version in done:
                    continue
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute("INSERT INTO stepwork_migrations (version) VALUES (%s)", (version,))

    # -- executions -------------------------------------------------------------------------------

    async def insert(self, row: ExecutionRow, steps: Sequence[StepRow]) -> None:
        params: dict[str, Any] = {
            **_key_params(row.key), "id": row.id, "state": row.state,
            "execution": json_text(row.execution), "context": json_text(row.context),
            "retention": row.retention_time, "created": row.created_at, "updated": row.updated_at,
            "deleted": row.deleted_at, "version": row.version, "owner": row.lease_owner,
            "lease_until": row.lease_expires_at, "progress": json_text(row.progress),
            "definition_hash": row.definition_hash,
        }
        count, step_params = _steps(steps)
        params.update(step_params)

        async def run(conn: Conn) -> None:
            try:
                await conn.execute(_insert_sql(count), params)
            except pg_errors.UniqueViolation:
                raise StepworkError(StepworkError.Types.CONFLICT,
                                    f"Transaction already started for transaction_id: {row.transaction_id}") from None
        await self._run(run)

    async def latest(self, workflow_id: str, transaction_id: str) -> ExecutionRow | None:
        r = await self._one(
            f"{_SELECT} WHERE workflow_id = %s AND transaction_id = %s AND deleted_at IS NULL "
            'ORDER BY created_at DESC, run_id COLLATE "C" DESC LIMIT 1', (workflow_id, transaction_id))
        return None if r is None else execution_row(r)

    async def get(self, key: ExecutionKey) -> ExecutionRow | None:
        r = await self._one(f"{_SELECT} WHERE {_KEY}", _key_params(key))
        return None if r is None else execution_row(r)

    async def get_by_id(self, execution_id: str) -> ExecutionRow | None:
        r = await self._one(f"{_SELECT} WHERE id = %s AND deleted_at IS NULL", (execution_id,))
        return None if r is None else execution_row(r)

    async def steps(self, key: ExecutionKey) -> list[StepRow]:
        rows = await self._all(
            "SELECT step_index, record, output, compensate_input, compensate_output FROM workflow_execution_step "
            f"WHERE {_KEY} ORDER BY step_index", _key_params(key))
        return [StepRow(r[0], json.loads(r[1]), r[2], r[3], r[4]) for r in rows]

    async def write(self, key: ExecutionKey, owner: str, version: int, *, state: str | None,
                    progress: Any, steps: Sequence[StepRow], lease_until: float | None,
                    finish: FinishData | None = None, now: float) -> int:
        params: dict[str, Any] = {**_key_params(key), "version": version, "owner": owner}
        if finish is not None and finish.delete:
            sql = _WRITE_DELETE
        else:
            params["progress"] = json_text(progress)
            if finish is not None:
                kind = "finish"
                params.update(execution=json_text(finish.execution), context=json_text(finish.context))
            elif lease_until is None:
                kind = "release"
            else:
                kind = "checkpoint" if state is not None else "same_state"
            if kind != "same_state":
                params.update(state=state, now=now)
            count, step_params = _steps(steps)
            params.update(step_params)
            sql = _write_sql(count, kind)
        r = await self._one(sql, params, prepare=True)
        if r is None:
            raise self._lost(key)
        return int(r[0])

    @staticmethod
    def _lost(key: ExecutionKey) -> LeaseLostError:
        return LeaseLostError(f'Execution "{key.workflow_id}" / "{key.transaction_id}" was taken over by another '
                              "process (its lease expired); this process stops driving it.")

    async def acquire(self, key: ExecutionKey, owner: str, lease_until: float, now: float, *,
                      include_done: bool = False) -> int | None:
        r = await self._one(_ACQUIRE_INCLUDE_DONE if include_done else _ACQUIRE,
                            {**_key_params(key), "owner": owner, "lease_until": lease_until, "now": now})
        return None if r is None else int(r[0])

    async def release(self, key: ExecutionKey, owner: str) -> None:
        await self._exec("UPDATE workflow_execution SET lease_owner = NULL, lease_expires_at = NULL "
                         f"WHERE {_KEY} AND lease_owner = %(owner)s", {**_key_params(key), "owner": owner})

    async def abandon(self, key: ExecutionKey, owner: str) -> None:
        await self._exec(f"UPDATE workflow_execution SET lease_owner = %(dead)s WHERE {_KEY} AND lease_owner = "
                         "%(owner)s", {**_key_params(key), "owner": owner, "dead": f"abandoned:{owner}"})

    async def renew(self, owner: str, lease_until: float) -> None:
        await self._exec("UPDATE workflow_execution SET lease_expires_at = to_timestamp(%s::float8) "
                         "WHERE lease_owner = %s", (lease_until, owner))

    async def orphans(self, now: float, limit: int) -> list[ExecutionKey]:
        rows = await self._all(
            "SELECT workflow_id, transaction_id, run_id FROM workflow_execution WHERE lease_owner IS NOT NULL "
            f"AND lease_expires_at < to_timestamp(%s::float8) AND state NOT IN {_FINISHED} AND deleted_at IS NULL "
            "LIMIT %s", (now, limit))
        return [ExecutionKey(*r) for r in rows]

    async def list_rows(self, query: ListQuery) -> tuple[list[ExecutionRow], int]:
        params: list[Any] = []
        where = to_sql(dict(query.filters), _time_param(params), lambda c: c, "ILIKE")
        order = ", ".join(_order_item(c, d) for c, d in query.order) or "created_at ASC"
        columns = _COLUMNS.format(records="execution, context" if query.with_records else "NULL, NULL")
        limit = None if query.take is None else int(query.take)  # LIMIT NULL: no limit

        async def run(conn: Conn) -> tuple[list[ExecutionRow], int]:
            cur = await conn.execute(f"SELECT count(*) FROM workflow_execution WHERE {where}", params)
            count = await cur.fetchone()
            cur = await conn.execute(
                f"SELECT {columns} FROM workflow_execution WHERE {where} ORDER BY {order} LIMIT %s OFFSET %s",
                [*params, limit, int(query.skip)])
            rows = await cur.fetchall()
            return [execution_row(r, query.with_records) for r in rows], int(count[0] if count else 0)
        return await self._run(run)

    async def finish_children(self, keys: Sequence[ExecutionKey], retention_time: float | None, now: float) -> None:
        async def run(conn: Conn) -> None:
            async with conn.transaction():
                for key in keys:
                    params = _key_params(key)
                    cur = await conn.execute(f"SELECT state FROM workflow_execution WHERE {_KEY}", params)
                    found = await cur.fetchone()
                    if found is None or found[0] not in ("done", "failed", "reverted"):
                        continue  # unfinished executions are never removed
                    if retention_time is None:
                        for table in ("workflow_execution_step", "workflow_timer", "workflow_execution"):
                            await conn.execute(f"DELETE FROM {table} WHERE {_KEY}", params)
                    else:
                        await conn.execute(
                            "UPDATE workflow_execution SET retention_time = %(ret)s, "
                            f"expires_at = to_timestamp(%(exp)s) WHERE {_KEY}",
                            {**params, "ret": retention_time, "exp": now + retention_time})
        await self._run(run)

    async def put_definition(self, definition_hash: str, workflow_id: str, template: str, now: float) -> None:
        await self._exec("INSERT INTO workflow_definition (hash, workflow_id, template, created_at) "
                         "VALUES (%s, %s, %s, to_timestamp(%s::float8)) ON CONFLICT (hash) DO NOTHING",
                         (definition_hash, workflow_id, template, now))

    async def get_definition(self, definition_hash: str) -> str | None:
        r = await self._one("SELECT template FROM workflow_definition WHERE hash = %s", (definition_hash,))
        return None if r is None else str(r[0])

    async def clear(self) -> None:
        async def run(conn: Conn) -> None:
            async with conn.transaction():
                for table in ("workflow_execution_step", "workflow_timer", "workflow_execution"):
                    await conn.execute(f"DELETE FROM {table}")
        await self._run(run)

    async def delete_expired(self, now: float) -> int:
        r = await self._one(_DELETE_EXPIRED, (now,))
        return int(r[0]) if r else 0

    # -- timers -----------------------------------------------------------------------------------

    async def add_timer(self, timer: TimerRow, *, replace: bool = True) -> None:
        sql = _ADD_TIMER if replace else _ADD_TIMER.split(" ON CONFLICT")[0] + " ON CONFLICT (id) DO NOTHING"
        await self._exec(sql, (timer.id, timer.workflow_id, timer.transaction_id, timer.run_id,
                                      timer.step_index, timer.kind, timer.due_at, json.dumps(timer.data)))

    async def due_timers(self, now: float, owner: str, limit: int, claim_for: float) -> list[TimerRow]:
        rows = await self._all(_DUE_TIMERS, {"now": now, "limit": limit, "owner": owner, "until": now + claim_for})
        return [TimerRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7])) for r in rows]

    async def delete_timer(self, timer_id: str) -> None:
        await self._exec("DELETE FROM workflow_timer WHERE id = %s", (timer_id,))

    async def delete_timers(self, key: ExecutionKey, kind: str | None = None) -> None:
        sql = f"DELETE FROM workflow_timer WHERE {_KEY}"
        params: dict[str, Any] = _key_params(key)
        if kind is not None:
            sql += " AND kind = %(kind)s"
            params["kind"] = kind
        await self._exec(sql, params)

    async def next_due(self) -> float | None:
        r = await self._one(f"SELECT {_epoch('min(due_at)')} FROM workflow_timer", ())
        return None if r is None or r[0] is None else float(r[0])
