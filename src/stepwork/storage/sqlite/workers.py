"""SQLite worker rows: the heartbeats of the engines sharing the database."""

from __future__ import annotations

import json

from stepwork.storage.base import WorkerRow
from stepwork.storage.rows import FINISHED
from stepwork.storage.sqlite.connection import SQLiteDatabase

__all__ = ["Workers"]

_UPSERT = ("INSERT INTO stepwork_worker (id, host, pid, concurrency, lease_ttl, definitions, started_at, "
           "heartbeat_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET concurrency = excluded.concurrency, "
           "lease_ttl = excluded.lease_ttl, definitions = excluded.definitions, heartbeat_at = excluded.heartbeat_at, "
           "stopped_at = NULL")
_COLUMNS = "id, host, pid, concurrency, lease_ttl, definitions, started_at, heartbeat_at, stopped_at"


class Workers(SQLiteDatabase):
    """Worker heartbeats."""

    async def heartbeat(self, worker: WorkerRow) -> None:
        await self._tx(lambda conn: conn.execute(_UPSERT, (
            worker.id, worker.host, worker.pid, worker.concurrency, worker.lease_ttl, json.dumps(worker.definitions),
            worker.started_at, worker.heartbeat_at)))

    async def worker_stopped(self, worker_id: str, now: float) -> None:
        await self._tx(lambda conn: conn.execute("UPDATE stepwork_worker SET stopped_at = ? WHERE id = ?",
                                                 (now, worker_id)))

    async def workers(self) -> list[WorkerRow]:
        rows = await self._retry(lambda: self.conn.execute(
            f"SELECT {_COLUMNS} FROM stepwork_worker ORDER BY heartbeat_at DESC, id").fetchall())
        return [WorkerRow(r[0], r[1], int(r[2]), int(r[3]), float(r[4]),
                          [(str(d[0]), str(d[1]), str(d[2])) for d in json.loads(r[5])], r[6], r[7], r[8])
                for r in rows]

    async def owned_counts(self) -> dict[str, int]:
        rows = await self._retry(lambda: self.conn.execute(
            "SELECT lease_owner, count(*) FROM workflow_execution WHERE lease_owner IS NOT NULL "
            f"AND state NOT IN {FINISHED} AND deleted_at IS NULL GROUP BY lease_owner").fetchall())
        return {str(r[0]): int(r[1]) for r in rows}

    async def delete_workers(self, before: float) -> int:
        return await self._tx(lambda conn: conn.execute(
            "DELETE FROM stepwork_worker WHERE heartbeat_at < ?", (before,)).rowcount)
