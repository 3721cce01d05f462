"""SQLite leases: taking, giving back and extending an execution's lease, and finding the orphans
(unfinished executions whose owner stopped renewing)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from stepwork.storage.base import ExecutionKey
from stepwork.storage.rows import FINISHED
from stepwork.storage.sqlite.connection import SQLiteDatabase

__all__ = ["IN_DEFINITIONS", "IN_WORKFLOWS", "Leases", "definitions_args"]

_KEY = "workflow_id = ? AND transaction_id = ? AND run_id = ?"
# A list of values travels as one JSON parameter (one statement text whatever the count, and no
# limit on bound variables); SQLite searches the primary key for each element.
_IN_KEYS = ("(workflow_id, transaction_id, run_id) IN (SELECT json_extract(value, '$[0]'), "
            "json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?))")
IN_WORKFLOWS = "workflow_id IN (SELECT value FROM json_each(?))"
# The definitions an engine has (a JSON list), or NULL for no filter: executions stored without a
# definition hash (before version 2) pass.
# (Its parameter is given twice: see ``definitions_args``.)
IN_DEFINITIONS = "(? IS NULL OR definition_hash IS NULL OR definition_hash IN (SELECT value FROM json_each(?)))"


def definitions_args(definitions: Collection[str] | None) -> tuple[str | None, str | None]:
    """The two parameters of :data:`IN_DEFINITIONS`."""
    listed = None if definitions is None else json.dumps(list(definitions))
    return listed, listed


def _acquire_sql(finished: tuple[str, ...]) -> str:
    # (A queued run taken this way, by a run call with its transaction id, leaves the queue.)
    return ("UPDATE workflow_execution SET lease_owner = ?, lease_expires_at = ?, version = version + 1, "
            "queued_at = NULL "
            f"WHERE {_KEY} AND state NOT IN {finished} AND deleted_at IS NULL "
            "AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < ?) RETURNING version")


_ACQUIRE = _acquire_sql(FINISHED)
_ACQUIRE_INCLUDE_DONE = _acquire_sql(("failed", "reverted"))
# Ends an unreadable execution without reading it (its columns stay as they are): see fail_unreadable.
_FAIL_UNREADABLE = (
    "UPDATE workflow_execution SET state = 'failed', lease_owner = NULL, lease_expires_at = NULL, queued_at = NULL, "
    "updated_at = ?, version = version + 1, "
    "expires_at = CASE WHEN retention_time IS NULL THEN NULL ELSE ? + retention_time END "
    f"WHERE {_KEY} AND state NOT IN {FINISHED} AND deleted_at IS NULL RETURNING 1")
_ORPHANS = ("SELECT workflow_id, transaction_id, run_id FROM workflow_execution WHERE lease_owner IS NOT NULL "
            f"AND lease_expires_at < ? AND state NOT IN {FINISHED} AND deleted_at IS NULL")


class Leases(SQLiteDatabase):
    """Leases and orphans."""

    async def acquire(self, key: ExecutionKey, owner: str, lease_until: float, now: float, *,
                      include_done: bool = False) -> int | None:
        sql = _ACQUIRE_INCLUDE_DONE if include_done else _ACQUIRE

        def run(conn: sqlite3.Connection) -> int | None:
            r = conn.execute(sql, (owner, lease_until, key.workflow_id, key.transaction_id, key.run_id,
                                   owner, now)).fetchone()
            return None if r is None else int(r[0])
        return await self._tx(run)

    async def release(self, key: ExecutionKey, owner: str) -> None:
        await self._tx(lambda conn: conn.execute(
            f"UPDATE workflow_execution SET lease_owner = NULL, lease_expires_at = NULL WHERE {_KEY} "
            "AND lease_owner = ?", (key.workflow_id, key.transaction_id, key.run_id, owner)))

    async def abandon(self, key: ExecutionKey, owner: str) -> None:
        await self._tx(lambda conn: conn.execute(
            f"UPDATE workflow_execution SET lease_owner = ? WHERE {_KEY} AND lease_owner = ?",
            (f"abandoned:{owner}", key.workflow_id, key.transaction_id, key.run_id, owner)))

    async def fail_unreadable(self, key: ExecutionKey, reason: str, now: float) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            if conn.execute(_FAIL_UNREADABLE, (now, now, *key)).fetchone() is None:
                return False
            # A finished execution has no timers (a finish removes them); these would fire on a row
            # nobody can read.
            conn.execute(f"DELETE FROM workflow_timer WHERE {_KEY}", tuple(key))
            return True
        return await self._tx(run)

    async def renew(self, owner: str, lease_until: float, keys: Sequence[ExecutionKey] | None = None) -> None:
        if keys is None:
            await self._tx(lambda conn: conn.execute(
                "UPDATE workflow_execution SET lease_expires_at = ? WHERE lease_owner = ?", (lease_until, owner)))
            return
        if not keys:
            return
        listed = json.dumps([[k.workflow_id, k.transaction_id, k.run_id] for k in keys])
        await self._tx(lambda conn: conn.execute(
            f"UPDATE workflow_execution SET lease_expires_at = ? WHERE lease_owner = ? AND {_IN_KEYS}",
            (lease_until, owner, listed)))

    async def orphans(self, now: float, limit: int, workflow_ids: Collection[str] | None = None, *,
                      definitions: Collection[str] | None = None) -> list[ExecutionKey]:
        args: tuple[Any, ...]
        if workflow_ids is None:
            sql, args = f"{_ORPHANS} AND {IN_DEFINITIONS} LIMIT ?", (now, *definitions_args(definitions), limit)
        elif not workflow_ids:
            return []
        else:
            sql = f"{_ORPHANS} AND {IN_WORKFLOWS} AND {IN_DEFINITIONS} LIMIT ?"
            args = (now, json.dumps(list(workflow_ids)), *definitions_args(definitions), limit)
        rows = await self._retry(lambda: self.conn.execute(sql, args).fetchall())
        return [ExecutionKey(*r) for r in rows]
