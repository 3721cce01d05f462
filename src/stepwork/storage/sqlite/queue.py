"""SQLite queued runs: inserting one, claiming them (one ``BEGIN IMMEDIATE`` transaction: the write
lock is held from the select to the update, so two engines never claim the same run), and putting
back in the queue what an engine abandoned when it stopped."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence

from stepwork.storage.base import Claimed, ExecutionKey, ExecutionRow
from stepwork.storage.queue_limits import pick
from stepwork.storage.rows import FINISHED, already_started, json_text
from stepwork.storage.sqlite.checkpoints import COLUMNS
from stepwork.storage.sqlite.connection import SQLiteDatabase
from stepwork.storage.sqlite.leases import IN_DEFINITIONS, IN_WORKFLOWS, definitions_args

__all__ = ["Queue"]

_INSERT = (f"INSERT INTO workflow_execution ({COLUMNS}, queued_at, priority) "
           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
_CLAIMABLE = ("SELECT workflow_id, transaction_id, run_id FROM workflow_execution WHERE queued_at IS NOT NULL "
              f"AND lease_owner IS NULL AND deleted_at IS NULL AND state NOT IN {FINISHED} AND {IN_WORKFLOWS} "
              f"AND {IN_DEFINITIONS} ORDER BY priority DESC, queued_at, id LIMIT ?")
_RUNNING = ("SELECT workflow_id, count(*) FROM workflow_execution WHERE lease_owner IS NOT NULL "
            f"AND state NOT IN {FINISHED} AND deleted_at IS NULL AND {IN_WORKFLOWS} GROUP BY workflow_id")
_CLAIM = ("UPDATE workflow_execution SET lease_owner = ?, lease_expires_at = ?, version = version + 1, "
          "queued_at = NULL WHERE workflow_id = ? AND transaction_id = ? AND run_id = ? RETURNING version")
_REQUEUE = ("UPDATE workflow_execution SET lease_owner = NULL, lease_expires_at = NULL, queued_at = ?, "
            f"version = version + 1 WHERE lease_owner IS NOT NULL AND lease_owner = ? AND state NOT IN {FINISHED} "
            "AND deleted_at IS NULL")


class Queue(SQLiteDatabase):
    """Queued runs."""

    async def enqueue(self, row: ExecutionRow, priority: int) -> None:
        params = (row.id, row.workflow_id, row.transaction_id, row.run_id, row.state, json_text(row.execution),
                  json_text(row.context), row.retention_time, row.created_at, row.updated_at, row.deleted_at,
                  row.version, None, None, json_text(row.progress), row.definition_hash, row.created_at, priority)

        def run(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(_INSERT, params)
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" not in str(exc):
                    raise
                raise already_started(row.transaction_id) from None
        await self._tx(run)

    async def claim_queued(self, owner: str, lease_until: float, limit: int, workflow_ids: Collection[str], *,
                           definitions: Collection[str] | None = None,
                           limits: Mapping[str, int] | None = None) -> list[Claimed]:
        if limit <= 0 or not workflow_ids:
            return []
        limited = {w: n for w, n in (limits or {}).items() if w in workflow_ids}

        def run(conn: sqlite3.Connection) -> list[Claimed]:
            # (The write lock is held from BEGIN IMMEDIATE: the counts stay true until the claims commit.)
            running = dict(conn.execute(_RUNNING, (json.dumps(list(limited)),)).fetchall()) if limited else {}
            allowed = [w for w in workflow_ids if w not in limited or running.get(w, 0) < limited[w]]
            if not allowed:
                return []
            scan = limit if not limited else min(limit * 4, 500)
            rows = conn.execute(_CLAIMABLE, (json.dumps(allowed), *definitions_args(definitions), scan)).fetchall()
            claimed = []
            for wf, tx, run_id in pick(rows, limit, limited, running):
                version = conn.execute(_CLAIM, (owner, lease_until, wf, tx, run_id)).fetchone()[0]
                claimed.append(Claimed(ExecutionKey(wf, tx, run_id), int(version)))
            return claimed
        return await self._tx(run)

    async def requeue_abandoned(self, owner: str, now: float) -> int:
        return await self._tx(lambda conn: conn.execute(_REQUEUE, (now, f"abandoned:{owner}")).rowcount)

    notifies = False  # no notifications between SQLite processes: they poll (a run queued here wakes its engine)

    async def watch(self, channels: Mapping[str, Callable[[str], None]], on_listen: Callable[[], None],
                    on_lost: Callable[[], None] | None = None) -> None:
        return

    async def notify(self, messages: Sequence[tuple[str, str]]) -> None:
        return
