"""PostgreSQL worker rows: the heartbeats of the engines sharing the database."""

from __future__ import annotations

import json
from typing import Any

from stepwork.storage.base import WorkerRow
from stepwork.storage.postgres.connection import PostgresDatabase
from stepwork.storage.postgres.statements import epoch
from stepwork.storage.rows import FINISHED

__all__ = ["Workers"]

_UPSERT = ("INSERT INTO stepwork_worker (id, host, pid, concurrency, lease_ttl, definitions, started_at, "
           "heartbeat_at) VALUES (%s, %s, %s, %s, %s, %s, to_timestamp(%s::float8), to_timestamp(%s::float8)) "
           "ON CONFLICT (id) DO UPDATE SET concurrency = excluded.concurrency, lease_ttl = excluded.lease_ttl, "
           "definitions = excluded.definitions, heartbeat_at = excluded.heartbeat_at, stopped_at = NULL")
_COLUMNS = (f"id, host, pid, concurrency, lease_ttl, definitions, {epoch('started_at')}, {epoch('heartbeat_at')}, "
            f"{epoch('stopped_at')}")


def _row(r: Any) -> WorkerRow:
    definitions = [(str(d[0]), str(d[1]), str(d[2])) for d in json.loads(r[5])]
    return WorkerRow(r[0], r[1], int(r[2]), int(r[3]), float(r[4]), definitions, float(r[6]), float(r[7]),
                     None if r[8] is None else float(r[8]))


class Workers(PostgresDatabase):
    """Worker heartbeats."""

    async def heartbeat(self, worker: WorkerRow) -> None:
        await self._exec(_UPSERT, (worker.id, worker.host, worker.pid, worker.concurrency, worker.lease_ttl,
                                   json.dumps(worker.definitions), worker.started_at, worker.heartbeat_at))

    async def worker_stopped(self, worker_id: str, now: float) -> None:
        await self._exec("UPDATE stepwork_worker SET stopped_at = to_timestamp(%s::float8) WHERE id = %s",
                         (now, worker_id))

    async def workers(self) -> list[WorkerRow]:
        rows = await self._all(f"SELECT {_COLUMNS} FROM stepwork_worker ORDER BY heartbeat_at DESC, id", ())
        return [_row(r) for r in rows]

    async def owned_counts(self) -> dict[str, int]:
        rows = await self._all("SELECT lease_owner, count(*) FROM workflow_execution WHERE lease_owner IS NOT NULL "
                               f"AND state NOT IN {FINISHED} AND deleted_at IS NULL GROUP BY lease_owner", ())
        return {str(r[0]): int(r[1]) for r in rows}

    async def delete_workers(self, before: float) -> int:
        r = await self._one("WITH d AS (DELETE FROM stepwork_worker WHERE heartbeat_at < to_timestamp(%s::float8) "
                            "RETURNING 1) SELECT count(*) FROM d", (before,))
        return 0 if r is None else int(r[0])
