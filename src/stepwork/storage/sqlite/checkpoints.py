"""SQLite checkpoints: inserting an execution and the fenced writes of its progress.

Hand-written SQL on ``sqlite3`` (the hot path: see docs/decisions.md, "The schema is defined once;
checkpoints are written by hand"). Every write is one transaction; a write is fenced on the
execution's ``version`` and ``lease_owner``, and a fenced-out one raises before it commits, so
nothing of it (step rows, deleted timers) is kept.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from stepwork.storage.base import ExecutionKey, ExecutionRow, FinishData, StepRow
from stepwork.storage.rows import already_started, json_text, lease_lost
from stepwork.storage.sqlite.connection import SEARCH_BATCH, SQLiteDatabase

__all__ = ["COLUMNS", "Checkpoints"]

COLUMNS = ("id, workflow_id, transaction_id, run_id, state, execution, context, retention_time, created_at, "
           "updated_at, deleted_at, version, lease_owner, lease_expires_at, progress, definition_hash")
_KEY = "workflow_id = ? AND transaction_id = ? AND run_id = ?"
_FENCE = f"{_KEY} AND version = ? AND lease_owner = ?"
_STEP_COLUMNS = ("workflow_id, transaction_id, run_id, step_index, record, output, compensate_input, "
                 "compensate_output")
_ON_STEP_CONFLICT = ("ON CONFLICT (workflow_id, transaction_id, run_id, step_index) DO UPDATE SET "
                     "record = excluded.record, output = excluded.output, "
                     "compensate_input = excluded.compensate_input, compensate_output = excluded.compensate_output")
_UPSERT_STEP = f"INSERT INTO workflow_execution_step ({_STEP_COLUMNS}) VALUES (?,?,?,?,?,?,?,?) {_ON_STEP_CONFLICT}"
_FENCED_UPSERT_STEP = (
    f"INSERT INTO workflow_execution_step ({_STEP_COLUMNS}) SELECT ?,?,?,?,?,?,?,? "
    f"WHERE EXISTS (SELECT 1 FROM workflow_execution WHERE {_FENCE}) {_ON_STEP_CONFLICT}")
_INSERT = f"INSERT INTO workflow_execution ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
_STEP_VALUES = "(?,?,?,?,?,?,?,?)"


def _fenced_upsert_steps(n: int) -> str:
    """One statement that upserts ``n`` step rows if the lease still holds: alone, it is its own
    transaction (one commit, no BEGIN/COMMIT round of statements)."""
    values = ",".join([_STEP_VALUES] * n)
    columns = ",".join(f"v.column{c}" for c in range(1, 9))
    return (f"INSERT INTO workflow_execution_step ({_STEP_COLUMNS}) SELECT {columns} FROM (VALUES {values}) AS v "
            f"WHERE EXISTS (SELECT 1 FROM workflow_execution WHERE {_FENCE}) {_ON_STEP_CONFLICT}")


_FENCED_UPSERTS = {n: _fenced_upsert_steps(n) for n in (1, 2, 3)}

# The header update of a checkpoint, by kind (the PostgreSQL store has the same four).
_DELETE = f"DELETE FROM workflow_execution WHERE {_FENCE}"
_FINISH = (  # release the lease, start the retention clock, replace the records if given
    "UPDATE workflow_execution SET state = ?, progress = ?, version = version + 1, updated_at = ?, "
    "lease_owner = NULL, lease_expires_at = NULL, execution = COALESCE(?, execution), "
    "context = COALESCE(?, context), "
    "expires_at = CASE WHEN retention_time IS NULL THEN NULL ELSE ? + retention_time END "
    f"WHERE {_FENCE}")
_RELEASE = (  # suspending: release the lease
    "UPDATE workflow_execution SET state = ?, progress = ?, version = version + 1, updated_at = ?, "
    f"lease_owner = NULL, lease_expires_at = NULL WHERE {_FENCE}")
# Within one state: only unindexed columns change (no index to update), and the lease stays as it
# is (the renewal loop extends it).
_SAME_STATE = f"UPDATE workflow_execution SET progress = COALESCE(?, progress), version = version + 1 WHERE {_FENCE}"
_CHECKPOINT = ("UPDATE workflow_execution SET progress = ?, version = version + 1, state = ?, updated_at = ? "
               f"WHERE {_FENCE}")


def upsert_steps(conn: sqlite3.Connection, key: ExecutionKey, steps: Sequence[StepRow]) -> None:
    """Insert or replace the rows of ``steps`` (the last of an index given twice wins)."""
    rows = [(key.workflow_id, key.transaction_id, key.run_id, s.index, json_text(s.record), s.output,
             s.compensate_input, s.compensate_output) for s in steps]
    if len(rows) == 1:
        conn.execute(_UPSERT_STEP, rows[0])
    else:
        conn.executemany(_UPSERT_STEP, rows)


def delete_timer_ids(conn: sqlite3.Connection, timer_ids: Sequence[str]) -> None:
    """Delete the timers of ``timer_ids``, in the caller's transaction."""
    if len(timer_ids) == 1:
        conn.execute("DELETE FROM workflow_timer WHERE id = ?", (timer_ids[0],))
    else:
        conn.executemany("DELETE FROM workflow_timer WHERE id = ?", [(t,) for t in timer_ids])


def delete_execution_rows(conn: sqlite3.Connection, table: str, k: tuple[str, str, str]) -> None:
    """Delete the rows of one execution from ``table``."""
    conn.execute(f"DELETE FROM {table} WHERE {_KEY}", k)


class Checkpoints(SQLiteDatabase):
    """Inserts and fenced writes."""

    async def insert(self, row: ExecutionRow, steps: Sequence[StepRow], *,
                     delete_timers: Sequence[str] = ()) -> None:
        def run(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(_INSERT, (
                    row.id, row.workflow_id, row.transaction_id, row.run_id, row.state,
                    json_text(row.execution), json_text(row.context),
                    row.retention_time, row.created_at, row.updated_at, row.deleted_at, row.version,
                    row.lease_owner, row.lease_expires_at, json_text(row.progress), row.definition_hash))
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" not in str(exc):
                    raise
                raise already_started(row.transaction_id) from None
            if steps:
                upsert_steps(conn, row.key, steps)
            if delete_timers:
                delete_timer_ids(conn, delete_timers)
            if self._search and self._unindexed >= SEARCH_BATCH:
                self._index_pending(conn)  # (one batch for q's FTS table, in this commit)
        await self._tx(run)
        self._unindexed += 1

    async def write_steps(self, key: ExecutionKey, owner: str, version: int, steps: Sequence[StepRow]) -> int:
        n = len(steps)
        statement = _FENCED_UPSERTS.get(n)
        if statement is None:
            return await self.write(key, owner, version, state=None, progress=None, steps=steps, lease_until=0.0,
                                    now=0.0)
        # One fenced statement, committed alone.
        wf, tx, run = key
        params: list[Any] = []
        for st in steps:
            params += (wf, tx, run, st.index, st.record, st.output, st.compensate_input, st.compensate_output)
        params += (wf, tx, run, version, owner)
        conn = self.conn
        try:
            changed = conn.execute(statement, params).rowcount
        except (sqlite3.Error, UnicodeError):  # busy (waited for), or an error to report as such
            changed = (await self._retry(lambda: conn.execute(statement, params))).rowcount
        self.committed()
        if changed != n:
            raise lease_lost(key)
        return version

    async def write(self, key: ExecutionKey, owner: str, version: int, *, state: str | None,
                    progress: Any, steps: Sequence[StepRow], lease_until: float | None,
                    finish: FinishData | None = None, now: float, delete_timers: Sequence[str] = ()) -> int:
        k = (key.workflow_id, key.transaction_id, key.run_id)

        if (state is None and progress is None and finish is None and lease_until is not None
                and len(steps) in _FENCED_UPSERTS and not delete_timers
                and len({st.index for st in steps}) == len(steps)):
            # The common step boundary (the last step's result, the next one's start): one fenced
            # statement, committed alone.
            statement = _FENCED_UPSERTS[len(steps)]
            params: list[Any] = []
            for st in steps:
                params += (*k, st.index, json_text(st.record), st.output, st.compensate_input, st.compensate_output)
            params += (*k, version, owner)
            conn = self.conn
            cur = await self._retry(lambda: conn.execute(statement, params))
            self.committed()
            if cur.rowcount != len(steps):
                raise lease_lost(key)
            return version

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
                    raise lease_lost(key)
                if delete_timers:
                    delete_timer_ids(conn, delete_timers)
                return version
            return await self._tx(upsert_only)

        def run(conn: sqlite3.Connection) -> int:
            if finish is not None and finish.delete:
                if conn.execute(_DELETE, (*k, version, owner)).rowcount != 1:
                    raise lease_lost(key)
                delete_execution_rows(conn, "workflow_execution_step", k)
                if finish.timers:
                    delete_execution_rows(conn, "workflow_timer", k)
                if delete_timers:
                    delete_timer_ids(conn, delete_timers)
                return version + 1
            if finish is not None:
                cur = conn.execute(_FINISH, (state, json_text(progress), now, json_text(finish.execution),
                                             json_text(finish.context), now, *k, version, owner))
            elif lease_until is None:
                cur = conn.execute(_RELEASE, (state, json_text(progress), now, *k, version, owner))
            elif state is None:
                cur = conn.execute(_SAME_STATE, (json_text(progress), *k, version, owner))
            else:
                cur = conn.execute(_CHECKPOINT, (json_text(progress), state, now, *k, version, owner))
            if cur.rowcount != 1:
                raise lease_lost(key)
            if steps:
                upsert_steps(conn, key, steps)
            if finish is not None and finish.timers:
                delete_execution_rows(conn, "workflow_timer", k)
            if delete_timers:
                delete_timer_ids(conn, delete_timers)
            return version + 1
        return await self._tx(run)
