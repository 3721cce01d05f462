"""PostgreSQL queued runs: inserting one (with ``NOTIFY`` in the same statement, so listeners wake
when it commits), claiming them (``FOR UPDATE SKIP LOCKED``: engines claiming at once neither wait
for nor take each other's), putting back what an engine abandoned, and listening for new ones on a
connection of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from typing import Any

from stepwork.errors import StepworkError
from stepwork.storage.base import QUEUE_CHANNEL, Claimed, ExecutionKey, ExecutionRow
from stepwork.storage.postgres.connection import PostgresDatabase, duplicate_is_conflict
from stepwork.storage.postgres.statements import TS
from stepwork.storage.rows import FINISHED, json_text

__all__ = ["Queue"]

logger = logging.getLogger("stepwork.storage.postgres")

_NOTIFY = f"SELECT pg_notify('{QUEUE_CHANNEL}', '')"
_INSERT = (
    "WITH ins AS (INSERT INTO workflow_execution (id, workflow_id, transaction_id, run_id, state, execution, "
    "context, retention_time, created_at, updated_at, version, progress, definition_hash, queued_at, priority) "
    "VALUES (%(id)s, %(wf)s, %(tx)s, %(run)s, %(state)s, %(execution)s, %(context)s, %(retention)s::float8, "
    f"{TS.format('created')}, {TS.format('created')}, %(version)s, %(progress)s, %(definition_hash)s, "
    f"{TS.format('created')}, %(priority)s) RETURNING 1) "
    f"SELECT pg_notify('{QUEUE_CHANNEL}', '') FROM ins")
_CLAIM = (
    "WITH c AS (SELECT workflow_id, transaction_id, run_id FROM workflow_execution WHERE queued_at IS NOT NULL "
    f"AND lease_owner IS NULL AND deleted_at IS NULL AND state NOT IN {FINISHED} "
    "AND workflow_id = ANY(%(workflows)s::text[]) ORDER BY priority DESC, queued_at, id LIMIT %(limit)s "
    "FOR UPDATE SKIP LOCKED) "
    "UPDATE workflow_execution e SET lease_owner = %(owner)s, lease_expires_at = to_timestamp(%(until)s::float8), "
    "version = e.version + 1, queued_at = NULL FROM c WHERE e.workflow_id = c.workflow_id "
    "AND e.transaction_id = c.transaction_id AND e.run_id = c.run_id "
    "RETURNING e.workflow_id, e.transaction_id, e.run_id, e.version, e.priority, e.id")
_REQUEUE = (
    "WITH r AS (UPDATE workflow_execution SET lease_owner = NULL, lease_expires_at = NULL, "
    f"queued_at = {TS.format('now')}, version = version + 1 WHERE lease_owner IS NOT NULL "
    f"AND lease_owner = %(owner)s AND state NOT IN {FINISHED} AND deleted_at IS NULL RETURNING 1) "
    "SELECT count(*) FROM r")
_RECONNECT_MAX = 30.0  # seconds between two attempts to listen again, at most


class Queue(PostgresDatabase):
    """Queued runs."""

    async def enqueue(self, row: ExecutionRow, priority: int) -> None:
        params: dict[str, Any] = {
            "id": row.id, "wf": row.workflow_id, "tx": row.transaction_id, "run": row.run_id, "state": row.state,
            "execution": json_text(row.execution), "context": json_text(row.context),
            "retention": row.retention_time, "created": row.created_at, "version": row.version,
            "progress": json_text(row.progress), "definition_hash": row.definition_hash, "priority": priority}
        with duplicate_is_conflict(row.transaction_id):
            await self._one(_INSERT, params)

    async def claim_queued(self, owner: str, lease_until: float, limit: int,
                           workflow_ids: Collection[str]) -> list[Claimed]:
        if limit <= 0 or not workflow_ids:
            return []
        rows = await self._all(_CLAIM, {"owner": owner, "until": lease_until, "limit": limit,
                                        "workflows": list(workflow_ids)})
        # (RETURNING keeps no order: the claiming order again, highest priority first, then by id,
        # which is a ULID made when the run was queued.)
        rows.sort(key=lambda r: (-r[4], r[5]))
        return [Claimed(ExecutionKey(r[0], r[1], r[2]), int(r[3])) for r in rows]

    async def requeue_abandoned(self, owner: str, now: float) -> int:
        r = await self._one(_REQUEUE, {"owner": f"abandoned:{owner}", "now": now})
        count = 0 if r is None else int(r[0])
        if count:
            await self._exec(_NOTIFY, ())
        return count

    async def watch_queue(self, wake: Callable[[], None]) -> None:
        """``LISTEN`` on a connection of its own (the store's one serves statements, one at a time);
        a lost connection is made again, with a growing pause, while polling covers the gap."""
        pause = 0.5
        while True:
            try:
                conn = await self._connect()
            except StepworkError as exc:
                logger.warning("Cannot listen for queued runs (%s); polling only, trying again in %.0f s.",
                               exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, _RECONNECT_MAX)
                continue
            try:
                await conn.execute(f"LISTEN {QUEUE_CHANNEL}")
                pause = 0.5
                wake()  # what was queued while nobody listened here
                async for _ in conn.notifies():
                    wake()
            except Exception as exc:
                logger.warning("Listening for queued runs stopped (%s); polling meanwhile.", exc)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()
            await asyncio.sleep(pause)
            pause = min(pause * 2, _RECONNECT_MAX)
