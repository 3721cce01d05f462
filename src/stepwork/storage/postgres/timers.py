"""PostgreSQL timers: durable wake-ups (retries, timeouts, schedules), claimed by one engine at a
time (``FOR UPDATE SKIP LOCKED``: engines claiming at once never wait for or take each other's)."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from stepwork.storage.base import ExecutionKey, TimerRow
from stepwork.storage.postgres.checkpoints import key_params
from stepwork.storage.postgres.connection import PostgresDatabase
from stepwork.storage.postgres.statements import KEY, epoch

__all__ = ["Timers"]

_INSERT = ("INSERT INTO workflow_timer (id, workflow_id, transaction_id, run_id, step_index, kind, due_at, data) "
           "VALUES (%s, %s, %s, %s, %s, %s, to_timestamp(%s::float8), %s) ON CONFLICT (id) ")
_REPLACE = "DO UPDATE SET due_at = excluded.due_at, data = excluded.data, claimed_by = NULL, claimed_until = NULL"
_COLUMNS = f"id, workflow_id, transaction_id, run_id, kind, {epoch('due_at')}, step_index, data"


def _due_sql(filtered: bool, of_definitions: bool) -> str:
    only = " AND workflow_id = ANY(%(workflows)s::text[])" if filtered else ""
    if of_definitions:  # a schedule's timer (no execution) passes, and so do those of executions it has
        only += (" AND (transaction_id = '' OR NOT EXISTS (SELECT 1 FROM workflow_execution e "
                 "WHERE e.workflow_id = workflow_timer.workflow_id "
                 "AND e.transaction_id = workflow_timer.transaction_id "
                 "AND e.run_id = workflow_timer.run_id AND e.definition_hash IS NOT NULL "
                 "AND NOT e.definition_hash = ANY(%(definitions)s::text[])))")
    return (
        "WITH c AS (SELECT id FROM workflow_timer WHERE due_at <= to_timestamp(%(now)s::float8) "
        f"AND (claimed_until IS NULL OR claimed_until < to_timestamp(%(now)s::float8)){only} "
        "ORDER BY due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED), "
        "u AS (UPDATE workflow_timer t SET claimed_by = %(owner)s, claimed_until = to_timestamp(%(until)s::float8) "
        "FROM c WHERE t.id = c.id RETURNING t.*) "
        f'SELECT {_COLUMNS} FROM u ORDER BY due_at, id COLLATE "C"')


_DUE = {(f, d): _due_sql(f, d) for f in (False, True) for d in (False, True)}


class Timers(PostgresDatabase):
    """Durable timers."""

    async def add_timer(self, timer: TimerRow, *, replace: bool = True) -> None:
        await self._exec(_INSERT + (_REPLACE if replace else "DO NOTHING"), (
            timer.id, timer.workflow_id, timer.transaction_id, timer.run_id, timer.step_index, timer.kind,
            timer.due_at, json.dumps(timer.data)))

    async def due_timers(self, now: float, owner: str, limit: int, claim_for: float,
                         workflow_ids: Collection[str] | None = None, *,
                         definitions: Collection[str] | None = None) -> list[TimerRow]:
        params: dict[str, Any] = {"now": now, "limit": limit, "owner": owner, "until": now + claim_for}
        if workflow_ids is not None and not workflow_ids:
            return []
        if workflow_ids is not None:
            params["workflows"] = list(workflow_ids)
        if definitions is not None:
            params["definitions"] = list(definitions)
        sql = _DUE[workflow_ids is not None, definitions is not None]
        rows = await self._all(sql, params)
        return [TimerRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7])) for r in rows]

    async def move_timer(self, timer_id: str, owner: str, claimed_due: float, to: TimerRow | None) -> bool:
        where = ("WHERE id = %(id)s AND claimed_by = %(owner)s "
                 "AND abs(extract(epoch FROM due_at) - %(due)s::float8) < 0.001")
        params: dict[str, Any] = {"id": timer_id, "owner": owner, "due": claimed_due}
        if to is None:
            sql = f"DELETE FROM workflow_timer {where} RETURNING id"
        else:
            sql = ("UPDATE workflow_timer SET due_at = to_timestamp(%(to)s::float8), data = %(data)s, "
                   f"claimed_by = NULL, claimed_until = NULL {where} RETURNING id")
            params |= {"to": to.due_at, "data": json.dumps(to.data)}
        return await self._one(sql, params) is not None

    async def delete_timer(self, timer_id: str) -> None:
        await self._exec("DELETE FROM workflow_timer WHERE id = %s", (timer_id,))

    async def delete_timers(self, key: ExecutionKey, kind: str | None = None) -> None:
        sql = f"DELETE FROM workflow_timer WHERE {KEY}"
        params: dict[str, Any] = key_params(key)
        if kind is not None:
            sql += " AND kind = %(kind)s"
            params["kind"] = kind
        await self._exec(sql, params)

    async def next_due(self) -> float | None:
        r = await self._one(f"SELECT {epoch('min(due_at)')} FROM workflow_timer", ())
        return None if r is None or r[0] is None else float(r[0])
