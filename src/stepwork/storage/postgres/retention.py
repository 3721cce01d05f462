"""PostgreSQL retention: deleting finished executions (with a parent, when their retention runs
out, or all of them for a test)."""

from __future__ import annotations

from collections.abc import Sequence

from stepwork.storage.base import ExecutionKey
from stepwork.storage.postgres.checkpoints import key_params
from stepwork.storage.postgres.connection import Conn, PostgresDatabase
from stepwork.storage.postgres.statements import KEY
from stepwork.storage.rows import FINISHED

__all__ = ["Retention"]

_TABLES = ("workflow_execution_step", "workflow_timer", "workflow_execution")
_DELETE_EXPIRED = (
    "WITH d AS (DELETE FROM workflow_execution WHERE expires_at IS NOT NULL AND expires_at <= "
    f"to_timestamp(%s::float8) AND state IN {FINISHED} RETURNING workflow_id, transaction_id, run_id), "
    "st AS (DELETE FROM workflow_execution_step s USING d WHERE s.workflow_id = d.workflow_id "
    "AND s.transaction_id = d.transaction_id AND s.run_id = d.run_id) "
    "SELECT count(*) FROM d")


class Retention(PostgresDatabase):
    """Deleting what is finished."""

    async def finish_children(self, keys: Sequence[ExecutionKey], retention_time: float | None, now: float) -> None:
        async def run(conn: Conn) -> None:
            async with conn.transaction():
                for key in keys:
                    params = key_params(key)
                    cur = await conn.execute(f"SELECT state FROM workflow_execution WHERE {KEY}", params)
                    found = await cur.fetchone()
                    if found is None or found[0] not in FINISHED:
                        continue  # unfinished executions are never removed
                    if retention_time is None:
                        for table in _TABLES:
                            await conn.execute(f"DELETE FROM {table} WHERE {KEY}", params)
                    else:
                        await conn.execute(
                            "UPDATE workflow_execution SET retention_time = %(ret)s, "
                            f"expires_at = to_timestamp(%(exp)s) WHERE {KEY}",
                            {**params, "ret": retention_time, "exp": now + retention_time})
        await self._run(run)

    async def delete_expired(self, now: float) -> int:
        r = await self._one(_DELETE_EXPIRED, (now,))
        return int(r[0]) if r else 0

    async def clear(self) -> None:
        async def run(conn: Conn) -> None:
            async with conn.transaction():
                for table in _TABLES:
                    await conn.execute(f"DELETE FROM {table}")
        await self._run(run)
