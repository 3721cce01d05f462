"""Rows and calls the store tests share."""

from __future__ import annotations

from stepwork.storage.base import ExecutionRow, ExecutionStore, FinishData, StepRow

__all__ = ["OTHER", "OWNER", "T0", "make_row", "timer_ids", "write"]

T0 = 1_700_000_000.25  # a fixed "now" (epoch seconds); times here are exact to the microsecond
OWNER = "engine-a"
OTHER = "engine-b"


def make_row(wf: str = "wf", tx: str = "tx-1", run: str = "run-1", *, state: str = "invoking",
             created_at: float = T0, owner: str | None = OWNER, lease_until: float | None = T0 + 30,
             retention_time: float | None = None, deleted_at: float | None = None, version: int = 1) -> ExecutionRow:
    """An execution row held by ``owner`` (times from ``T0``)."""
    return ExecutionRow(
        id=f"wf_exec_{wf}_{tx}_{run}", workflow_id=wf, transaction_id=tx, run_id=run, state=state,
        execution={"steps": {"_root": {"id": "_root"}}, "n": 1}, context={"payload": {"x": 1}},
        retention_time=retention_time, created_at=created_at, updated_at=created_at, deleted_at=deleted_at,
        version=version, lease_owner=owner, lease_expires_at=lease_until, progress={"cursor": 0})


async def write(store: ExecutionStore, row: ExecutionRow, version: int, *, owner: str = OWNER,
                state: str | None = "invoking", steps: tuple[StepRow, ...] = (), lease_until: float | None = T0 + 60,
                finish: FinishData | None = None, now: float = T0 + 1, delete_timers: tuple[str, ...] = ()) -> int:
    """A checkpoint of ``row`` at ``version`` (its progress is the version)."""
    return await store.write(row.key, owner, version, state=state, progress={"cursor": version}, steps=steps,
                             lease_until=lease_until, finish=finish, now=now, delete_timers=delete_timers)


async def timer_ids(store: ExecutionStore, now: float, owner: str = OWNER, limit: int = 10,
                    claim_for: float = 30) -> list[str]:
    """The ids of the timers ``owner`` claims at ``now``."""
    return [t.id for t in await store.due_timers(now, owner, limit, claim_for)]
