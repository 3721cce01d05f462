"""PostgreSQL queued runs: inserting one (with ``NOTIFY`` in the same statement, so listeners wake
when it commits), claiming them (``FOR UPDATE SKIP LOCKED``: engines claiming at once neither wait
for nor take each other's), putting back what an engine abandoned; and the notifications between
processes (``LISTEN`` on a connection of its own, ``NOTIFY``): new queued runs, shared events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from stepwork.errors import StepworkError
from stepwork.storage.base import QUEUE_CHANNEL, Claimed, ExecutionKey, ExecutionRow
from stepwork.storage.postgres.connection import Conn, PostgresDatabase, duplicate_is_conflict
from stepwork.storage.postgres.statements import ROW_COLUMNS, TS
from stepwork.storage.queue_limits import pick
from stepwork.storage.rows import FINISHED, execution_row, json_text

__all__ = ["Queue"]

logger = logging.getLogger("stepwork.storage.postgres")

_NOTIFY = f"SELECT pg_notify('{QUEUE_CHANNEL}', '')"
_SEND = "SELECT count(pg_notify(c, p)) FROM unnest(%s::text[], %s::text[]) AS m(c, p)"
_INSERT = (
    "WITH ins AS (INSERT INTO workflow_execution (id, workflow_id, transaction_id, run_id, state, execution, "
    "context, retention_time, created_at, updated_at, version, progress, definition_hash, queued_at, priority) "
    "VALUES (%(id)s, %(wf)s, %(tx)s, %(run)s, %(state)s, %(execution)s, %(context)s, %(retention)s::float8, "
    f"{TS.format('created')}, {TS.format('created')}, %(version)s, %(progress)s, %(definition_hash)s, "
    f"{TS.format('created')}, %(priority)s) RETURNING 1) "
    f"SELECT pg_notify('{QUEUE_CHANNEL}', '') FROM ins")
_CLAIMABLE = (
    "SELECT workflow_id, transaction_id, run_id FROM workflow_execution WHERE queued_at IS NOT NULL "
    f"AND lease_owner IS NULL AND deleted_at IS NULL AND state NOT IN {FINISHED} "
    "AND workflow_id = ANY(%(workflows)s::text[]) "
    "AND (%(definitions)s::text[] IS NULL OR definition_hash IS NULL "
    "OR definition_hash = ANY(%(definitions)s::text[])) "
    "ORDER BY priority DESC, queued_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED")
_TAKE = (
    "UPDATE workflow_execution e SET lease_owner = %(owner)s, lease_expires_at = to_timestamp(%(until)s::float8), "
    "version = e.version + 1, queued_at = NULL FROM c WHERE e.workflow_id = c.cw "
    "AND e.transaction_id = c.ct AND e.run_id = c.cr "
    # (the row as the claim left it: the claimer needs no read of its own)
    f"RETURNING {ROW_COLUMNS.format(records='execution, context')}, e.priority")
_CLAIM = f"WITH c(cw, ct, cr) AS ({_CLAIMABLE}) {_TAKE}"
# The rows picked (under the per-workflow limits) from those locked by _CLAIMABLE, by key.
_CLAIM_PICKED = ("WITH c AS (SELECT * FROM unnest(%(wf)s::text[], %(tx)s::text[], %(run)s::text[]) "
                 f"AS c(cw, ct, cr)) {_TAKE}")
_RUNNING = ("SELECT workflow_id, count(*) FROM workflow_execution WHERE lease_owner IS NOT NULL "
            f"AND state NOT IN {FINISHED} AND deleted_at IS NULL AND workflow_id = ANY(%s::text[]) "
            "GROUP BY workflow_id")
# Claims under per-workflow limits take turns across engines (the counts must hold until they commit).
_LIMITS_LOCK = int.from_bytes(b"sw-limit", "big")
_REQUEUE = (
    "WITH r AS (UPDATE workflow_execution SET lease_owner = NULL, lease_expires_at = NULL, "
    f"queued_at = {TS.format('now')}, version = version + 1 WHERE lease_owner IS NOT NULL "
    f"AND lease_owner = %(owner)s AND state NOT IN {FINISHED} AND deleted_at IS NULL RETURNING 1) "
    "SELECT count(*) FROM r")
_RECONNECT_MAX = 30.0  # seconds between two attempts to listen again, at most


def _row(r: Sequence[Any]) -> ExecutionRow | None:
    try:
        return execution_row(r[:-1])
    except Exception:  # unreadable: the claimer reads it again, and finds out (see engine.recovery)
        return None


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

    async def claim_queued(self, owner: str, lease_until: float, limit: int, workflow_ids: Collection[str], *,
                           definitions: Collection[str] | None = None,
                           limits: Mapping[str, int] | None = None) -> list[Claimed]:
        if limit <= 0 or not workflow_ids:
            return []
        params: dict[str, Any] = {"owner": owner, "until": lease_until, "limit": limit,
                                  "workflows": list(workflow_ids),
                                  "definitions": None if definitions is None else list(definitions)}
        limited = {w: n for w, n in (limits or {}).items() if w in workflow_ids}
        if limited:
            rows = await self._run(lambda conn: self._claim_limited(conn, params, limited))
        else:
            rows = await self._all(_CLAIM, params)
        # (RETURNING keeps no order: the claiming order again, highest priority first, then by id,
        # which is a ULID made when the run was queued.)
        rows.sort(key=lambda r: (-r[-1], r[0]))
        return [Claimed(ExecutionKey(r[1], r[2], r[3]), int(r[11]), _row(r)) for r in rows]

    @staticmethod
    async def _claim_limited(conn: Conn, params: dict[str, Any], limited: dict[str, int]) -> list[Any]:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LIMITS_LOCK,))
            cur = await conn.execute(_RUNNING, (list(limited),))
            running = {str(r[0]): int(r[1]) for r in await cur.fetchall()}
            allowed = [w for w in params["workflows"] if w not in limited or running.get(w, 0) < limited[w]]
            if not allowed:
                return []
            cur = await conn.execute(_CLAIMABLE, {**params, "workflows": allowed,
                                                  "limit": min(params["limit"] * 4, 500)})
            picked = pick(await cur.fetchall(), params["limit"], limited, running)
            if not picked:
                return []
            cur = await conn.execute(_CLAIM_PICKED, {**params, "wf": [r[0] for r in picked],
                                                     "tx": [r[1] for r in picked], "run": [r[2] for r in picked]})
            return list(await cur.fetchall())

    async def requeue_abandoned(self, owner: str, now: float) -> int:
        r = await self._one(_REQUEUE, {"owner": f"abandoned:{owner}", "now": now})
        count = 0 if r is None else int(r[0])
        if count:
            await self._exec(_NOTIFY, ())
        return count

    notifies = True

    async def notify(self, messages: Sequence[tuple[str, str]]) -> None:
        if messages:
            await self._exec(_SEND, ([m[0] for m in messages], [m[1] for m in messages]))

    async def watch(self, channels: Mapping[str, Callable[[str], None]], on_listen: Callable[[], None],
                    on_lost: Callable[[], None] | None = None) -> None:
        """``LISTEN`` on a connection of its own (the store's one serves statements, one at a time);
        a lost connection is made again, with a growing pause, while polling covers the gap."""
        pause = 0.5
        while True:
            connecting = asyncio.ensure_future(self._connect())
            try:
                conn = await asyncio.shield(connecting)
            except asyncio.CancelledError:  # stopped while connecting: the connection made is closed
                with contextlib.suppress(BaseException):
                    await (await connecting).close()
                raise
            except StepworkError as exc:
                logger.warning("Cannot listen for notifications (%s); polling only, trying again in %.0f s.",
                               exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, _RECONNECT_MAX)
                continue
            try:
                for channel in channels:
                    await conn.execute(f'LISTEN "{channel}"')
                pause = 0.5
                on_listen()  # (what was sent while nobody listened here is missed: the caller catches up)
                async for note in conn.notifies():
                    handle = channels.get(note.channel)
                    if handle is not None:
                        try:
                            handle(note.payload)
                        except Exception:
                            logger.exception("Handling a notification on %s failed; ignored.", note.channel)
            except Exception as exc:
                logger.warning("Listening for notifications stopped (%s); polling meanwhile.", exc)
            finally:
                if on_lost is not None:
                    on_lost()
                with contextlib.suppress(Exception):
                    await asyncio.shield(conn.close())  # (closed even if this task is being cancelled)
            await asyncio.sleep(pause)
            pause = min(pause * 2, _RECONNECT_MAX)
