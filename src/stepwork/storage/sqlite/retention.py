"""SQLite retention: deleting finished executions (with a parent, when their retention runs out, or
all of them for a test), and folding the write-ahead log."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from stepwork.storage.base import ExecutionKey
from stepwork.storage.rows import FINISHED
from stepwork.storage.sqlite.checkpoints import delete_execution_rows
from stepwork.storage.sqlite.connection import SQLiteDatabase

__all__ = ["Retention"]

_TABLES = ("workflow_execution_step", "workflow_timer", "workflow_execution")


class Retention(SQLiteDatabase):
    """Deleting what is finished."""

    async def finish_children(self, keys: Sequence[ExecutionKey], retention_time: float | None, now: float) -> None:
        def run(conn: sqlite3.Connection) -> None:
            for key in keys:
                k = (key.workflow_id, key.transaction_id, key.run_id)
                state = conn.execute("SELECT state FROM workflow_execution WHERE workflow_id = ? AND "
                                     "transaction_id = ? AND run_id = ?", k).fetchone()
                if state is None or state[0] not in FINISHED:
                    continue  # unfinished executions are never removed
                if retention_time is None:
                    for table in _TABLES:
                        delete_execution_rows(conn, table, k)
                else:
                    conn.execute("UPDATE workflow_execution SET retention_time = ?, expires_at = ? "
                                 "WHERE workflow_id = ? AND transaction_id = ? AND run_id = ?",
                                 (retention_time, now + retention_time, *k))
        await self._tx(run)

    async def delete_expired(self, now: float) -> int:
        def run(conn: sqlite3.Connection) -> int:
            keys = conn.execute(
                "SELECT workflow_id, transaction_id, run_id FROM workflow_execution "
                f"WHERE expires_at IS NOT NULL AND expires_at <= ? AND state IN {FINISHED}", (now,)).fetchall()
            for k in keys:
                delete_execution_rows(conn, "workflow_execution_step", k)
                delete_execution_rows(conn, "workflow_execution", k)
            return len(keys)
        return await self._tx(run)

    async def clear(self) -> None:
        def run(conn: sqlite3.Connection) -> None:
            for table in _TABLES:
                conn.execute(f"DELETE FROM {table}")
        await self._tx(run)

    async def fold_wal(self) -> None:
        """Copy what the write-ahead log holds into the database file, without blocking writers; first
        index a chunk of the executions q's FTS table does not hold yet (called every third of the
        lease time, this keeps the pending rows few when nobody searches, and a bulk load's many
        pending rows never hold the loop for long: q indexes whatever is left before it reads)."""
        await self.flush_search(chunks=1)
        self.fold_soon()  # (on the folding thread: a checkpoint's copying and syncing hold no loop)
