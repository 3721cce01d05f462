"""PostgreSQL checkpoints: inserting an execution and the fenced writes of its progress, each one
statement (see :mod:`.statements`), sent alone or in a group commit (see :mod:`.group_commit`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stepwork.storage.base import ExecutionKey, ExecutionRow, FinishData, StepRow
from stepwork.storage.postgres.connection import PostgresDatabase, duplicate_is_conflict
from stepwork.storage.postgres.statements import insert_sql, step_params, write_sql
from stepwork.storage.rows import already_started, json_text, lease_lost

__all__ = ["Checkpoints", "key_params"]


def key_params(key: ExecutionKey) -> dict[str, Any]:
    """The parameters of :data:`~stepwork.storage.postgres.statements.KEY`."""
    return {"wf": key.workflow_id, "tx": key.transaction_id, "run": key.run_id}


class Checkpoints(PostgresDatabase):
    """Inserts and fenced writes."""

    async def insert(self, row: ExecutionRow, steps: Sequence[StepRow], *,
                     delete_timers: Sequence[str] = ()) -> None:
        params: dict[str, Any] = {
            **key_params(row.key), "id": row.id, "state": row.state,
            "execution": json_text(row.execution), "context": json_text(row.context),
            "retention": row.retention_time, "created": row.created_at, "updated": row.updated_at,
            "deleted": row.deleted_at, "version": row.version, "owner": row.lease_owner,
            "lease_until": row.lease_expires_at, "progress": json_text(row.progress),
            "definition_hash": row.definition_hash,
        }
        count, more = step_params(steps)
        params.update(more)
        if delete_timers:
            params["timer_ids"] = list(delete_timers)
        sql = insert_sql(count, bool(delete_timers))

        with duplicate_is_conflict(row.transaction_id):
            inserted = await self._hot(sql, params)
        if inserted is None:  # the key is taken (ON CONFLICT DO NOTHING)
            raise already_started(row.transaction_id)

    async def write_steps(self, key: ExecutionKey, owner: str, version: int, steps: Sequence[StepRow]) -> int:
        count, params = step_params(steps)
        params["wf"], params["tx"], params["run"] = key
        params["version"] = version
        params["owner"] = owner
        params["progress"] = None
        r = await self._hot(write_sql(count, "same_state", False), params)
        if r is None:
            raise lease_lost(key)
        return int(r[0])  # type: ignore[arg-type]

    async def write(self, key: ExecutionKey, owner: str, version: int, *, state: str | None,
                    progress: Any, steps: Sequence[StepRow], lease_until: float | None,
                    finish: FinishData | None = None, now: float, delete_timers: Sequence[str] = ()) -> int:
        params: dict[str, Any] = {**key_params(key), "version": version, "owner": owner}
        count = 0
        if finish is not None and finish.delete:
            kind = "delete"
        else:
            params["progress"] = json_text(progress)
            if finish is not None:
                kind = "finish"
                params.update(execution=json_text(finish.execution), context=json_text(finish.context))
            elif lease_until is None:
                kind = "release"
            else:
                kind = "checkpoint" if state is not None else "same_state"
            if kind != "same_state":
                params.update(state=state, now=now)
            count, more = step_params(steps)
            params.update(more)
        if delete_timers:
            params["timer_ids"] = list(delete_timers)
        r = await self._hot(write_sql(count, kind, bool(delete_timers)), params)
        if r is None:
            raise lease_lost(key)
        return int(r[0])  # type: ignore[arg-type]
