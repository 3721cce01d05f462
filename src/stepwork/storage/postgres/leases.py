"""PostgreSQL leases: taking, giving back and extending an execution's lease, and finding the
orphans (unfinished executions whose owner stopped renewing)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from stepwork.storage.base import ExecutionKey
from stepwork.storage.postgres.checkpoints import key_params
from stepwork.storage.postgres.connection import PostgresDatabase
from stepwork.storage.postgres.statements import KEY, TS, acquire_sql
from stepwork.storage.rows import FINISHED

__all__ = ["IN_DEFINITIONS", "Leases"]

# The definitions an engine has: executions stored without a definition hash (before version 2) pass.
IN_DEFINITIONS = "(definition_hash IS NULL OR definition_hash = ANY(%s::text[]))"

_ACQUIRE = acquire_sql(include_done=False)
_ACQUIRE_INCLUDE_DONE = acquire_sql(include_done=True)
_RENEW_ALL = "UPDATE workflow_execution SET lease_expires_at = to_timestamp(%s::float8) WHERE lease_owner = %s"
# The keys travel as three arrays: one statement, one round trip, whatever their number.
_RENEW_KEYS = (
    "UPDATE workflow_execution e SET lease_expires_at = to_timestamp(%(until)s::float8) "
    "FROM unnest(%(wf)s::text[], %(tx)s::text[], %(run)s::text[]) AS k(wf, tx, run) "
    "WHERE e.lease_owner = %(owner)s AND e.workflow_id = k.wf AND e.transaction_id = k.tx AND e.run_id = k.run")
# Ends an unreadable execution without reading it (its columns stay as they are), and removes its
# timers (a finished execution has none; these would fire on a row nobody can read): one statement.
_FAIL_UNREADABLE = (
    "WITH failed AS (UPDATE workflow_execution SET state = 'failed', lease_owner = NULL, lease_expires_at = NULL, "
    f"queued_at = NULL, updated_at = {TS.format('now')}, version = version + 1, "
    "expires_at = to_timestamp(%(now)s::float8 + retention_time) "
    f"WHERE {KEY} AND state NOT IN {FINISHED} AND deleted_at IS NULL RETURNING 1), "
    f"timers AS (DELETE FROM workflow_timer WHERE {KEY} AND EXISTS (SELECT 1 FROM failed)) "
    "SELECT count(*) FROM failed")
_ORPHANS = ("SELECT workflow_id, transaction_id, run_id FROM workflow_execution WHERE lease_owner IS NOT NULL "
            f"AND lease_expires_at < to_timestamp(%s::float8) AND state NOT IN {FINISHED} AND deleted_at IS NULL")


class Leases(PostgresDatabase):
    """Leases and orphans."""

    async def acquire(self, key: ExecutionKey, owner: str, lease_until: float, now: float, *,
                      include_done: bool = False) -> int | None:
        r = await self._one(_ACQUIRE_INCLUDE_DONE if include_done else _ACQUIRE,
                            {**key_params(key), "owner": owner, "lease_until": lease_until, "now": now})
        return None if r is None else int(r[0])

    async def release(self, key: ExecutionKey, owner: str) -> None:
        await self._exec("UPDATE workflow_execution SET lease_owner = NULL, lease_expires_at = NULL "
                         f"WHERE {KEY} AND lease_owner = %(owner)s", {**key_params(key), "owner": owner})

    async def abandon(self, key: ExecutionKey, owner: str) -> None:
        await self._exec(f"UPDATE workflow_execution SET lease_owner = %(dead)s WHERE {KEY} AND lease_owner = "
                         "%(owner)s", {**key_params(key), "owner": owner, "dead": f"abandoned:{owner}"})

    async def fail_unreadable(self, key: ExecutionKey, reason: str, now: float) -> bool:
        r = await self._one(_FAIL_UNREADABLE, {**key_params(key), "now": now})
        return r is not None and int(r[0]) > 0

    async def renew(self, owner: str, lease_until: float, keys: Sequence[ExecutionKey] | None = None) -> None:
        if keys is None:
            await self._exec(_RENEW_ALL, (lease_until, owner))
            return
        unique = list(dict.fromkeys(keys))  # a row joined twice would be updated twice
        if not unique:
            return
        await self._exec(_RENEW_KEYS, {"until": lease_until, "owner": owner,
                                       "wf": [k.workflow_id for k in unique],
                                       "tx": [k.transaction_id for k in unique],
                                       "run": [k.run_id for k in unique]})

    async def orphans(self, now: float, limit: int, workflow_ids: Collection[str] | None = None, *,
                      definitions: Collection[str] | None = None) -> list[ExecutionKey]:
        args: tuple[Any, ...]
        if workflow_ids is not None and not workflow_ids:
            return []
        sql, args = _ORPHANS, (now,)
        if workflow_ids is not None:
            sql, args = f"{sql} AND workflow_id = ANY(%s::text[])", (*args, list(workflow_ids))
        if definitions is not None:
            sql, args = f"{sql} AND {IN_DEFINITIONS}", (*args, list(definitions))
        sql, args = f"{sql} LIMIT %s", (*args, limit)
        rows = await self._all(sql, args)
        return [ExecutionKey(*r) for r in rows]
