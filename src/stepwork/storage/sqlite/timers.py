"""SQLite timers: durable wake-ups (retries, timeouts, schedules), claimed by one engine at a time."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from typing import Any

from stepwork.storage.base import ExecutionKey, TimerRow
from stepwork.storage.sqlite.connection import SQLiteDatabase
from stepwork.storage.sqlite.leases import IN_WORKFLOWS, definitions_args

__all__ = ["Timers"]

_DUE = ("SELECT id, workflow_id, transaction_id, run_id, kind, due_at, step_index, data FROM workflow_timer "
        "WHERE due_at <= ? AND (claimed_until IS NULL OR claimed_until < ?)")
_ORDER = " ORDER BY due_at, id LIMIT ?"
# A timer of an execution passes if the execution's definition is one the engine has (or none is
# stored); a schedule's timer (no execution: empty transaction id) passes.
_OF_DEFINITIONS = (
    " AND (? IS NULL OR transaction_id = '' OR NOT EXISTS (SELECT 1 FROM workflow_execution e "
    "WHERE e.workflow_id = workflow_timer.workflow_id AND e.transaction_id = workflow_timer.transaction_id "
    "AND e.run_id = workflow_timer.run_id AND e.definition_hash IS NOT NULL "
    "AND e.definition_hash NOT IN (SELECT value FROM json_each(?))))")
_INSERT = ("INSERT INTO workflow_timer (id, workflow_id, transaction_id, run_id, step_index, kind, due_at, data) "
           "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (id) ")
_REPLACE = "DO UPDATE SET due_at = excluded.due_at, data = excluded.data, claimed_by = NULL, claimed_until = NULL"


class Timers(SQLiteDatabase):
    """Durable timers."""

    async def add_timer(self, timer: TimerRow, *, replace: bool = True) -> None:
        sql = _INSERT + (_REPLACE if replace else "DO NOTHING")
        await self._tx(lambda conn: conn.execute(sql, (
            timer.id, timer.workflow_id, timer.transaction_id, timer.run_id, timer.step_index, timer.kind,
            timer.due_at, json.dumps(timer.data))))

    async def due_timers(self, now: float, owner: str, limit: int, claim_for: float,
                         workflow_ids: Collection[str] | None = None, *,
                         definitions: Collection[str] | None = None) -> list[TimerRow]:
        args: tuple[Any, ...]
        if workflow_ids is None:
            sql, args = _DUE + _OF_DEFINITIONS + _ORDER, (now, now, *definitions_args(definitions), limit)
        elif not workflow_ids:
            return []
        else:
            sql = f"{_DUE} AND {IN_WORKFLOWS}{_OF_DEFINITIONS}{_ORDER}"
            args = (now, now, json.dumps(list(workflow_ids)), *definitions_args(definitions), limit)

        def run(conn: sqlite3.Connection) -> list[TimerRow]:
            rows = conn.execute(sql, args).fetchall()
            if rows:  # the write lock is held since BEGIN IMMEDIATE: no other engine claims these
                conn.executemany("UPDATE workflow_timer SET claimed_by = ?, claimed_until = ? WHERE id = ?",
                                 [(owner, now + claim_for, r[0]) for r in rows])
            return [TimerRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7])) for r in rows]
        return await self._tx(run)

    async def move_timer(self, timer_id: str, owner: str, claimed_due: float, to: TimerRow | None) -> bool:
        where = "WHERE id = ? AND claimed_by = ? AND abs(due_at - ?) < 0.001"
        args: tuple[Any, ...]
        if to is None:
            sql, args = f"DELETE FROM workflow_timer {where}", (timer_id, owner, claimed_due)
        else:
            sql = f"UPDATE workflow_timer SET due_at = ?, data = ?, claimed_by = NULL, claimed_until = NULL {where}"
            args = (to.due_at, json.dumps(to.data), timer_id, owner, claimed_due)
        return bool(await self._tx(lambda conn: conn.execute(sql, args).rowcount == 1))

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
