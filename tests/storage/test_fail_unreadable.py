"""``fail_unreadable``, on every backend: an execution whose row cannot be read is ended (``failed``, no
lease, out of the queue, its timers gone) without its columns being read or rewritten; a finished,
deleted or missing one is left alone."""

from __future__ import annotations

from typing import Any

import pytest

from stepwork.storage.base import ExecutionKey, ExecutionStore, LeaseLostError, TimerRow
from stepwork.storage.sqlite import SQLiteStore
from tests.storage.helpers import OWNER, T0, make_row, write

NOW = T0 + 100


async def raw(store: ExecutionStore, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run ``sql`` (``?`` placeholders) on the store's own connection, around its reading code."""
    if isinstance(store, SQLiteStore):
        return [tuple(r) for r in store.conn.execute(sql, params).fetchall()]
    pg_sql = sql.replace("?", "%s")
    if pg_sql.lstrip().upper().startswith("SELECT"):
        return [tuple(r) for r in await store._all(pg_sql, params)]  # type: ignore[attr-defined]
    await store._exec(pg_sql, params)  # type: ignore[attr-defined]
    return []


def epoch(column: str, store: ExecutionStore) -> str:
    return column if isinstance(store, SQLiteStore) else f"extract(epoch from {column})::float8"


async def header(store: ExecutionStore, key: ExecutionKey) -> dict[str, Any]:
    """The columns of the row that are read without parsing JSON."""
    cols = ["state", "lease_owner", epoch("lease_expires_at", store), epoch("queued_at", store),
            epoch("updated_at", store), "version", "context", "progress", epoch("expires_at", store)]
    rows = await raw(store, f"SELECT {', '.join(cols)} FROM workflow_execution WHERE workflow_id = ? "
                            "AND transaction_id = ? AND run_id = ?", *key)
    assert len(rows) == 1
    names = ["state", "lease_owner", "lease_expires_at", "queued_at", "updated_at", "version", "context",
             "progress", "expires_at"]
    return dict(zip(names, rows[0], strict=True))


async def corrupt(store: ExecutionStore, key: ExecutionKey, column: str, text: str) -> None:
    await raw(store, f"UPDATE workflow_execution SET {column} = ? WHERE workflow_id = ? AND transaction_id = ? "
                     "AND run_id = ?", text, *key)


async def test_a_queued_execution_with_a_corrupt_context_is_failed_and_leaves_the_queue(
        store: ExecutionStore) -> None:
    row = make_row(tx="queued", state="not_started", owner=None, lease_until=None)
    await store.enqueue(row, 0)
    await corrupt(store, row.key, "context", "{not json")
    with pytest.raises(ValueError):  # what the engine's read meets
        await store.get(row.key)

    assert await store.fail_unreadable(row.key, "JSONDecodeError: context", NOW) is True

    h = await header(store, row.key)
    assert h["state"] == "failed"
    assert h["lease_owner"] is None and h["lease_expires_at"] is None and h["queued_at"] is None
    assert h["updated_at"] == pytest.approx(NOW)
    assert h["version"] == row.version + 1
    assert h["context"] == "{not json", "the corrupt column is left for whoever repairs the row"
    assert await store.claim_queued(OWNER, NOW + 30, 10, ["wf"]) == []
    assert await store.fail_unreadable(row.key, "again", NOW + 1) is False, "a finished row changes no more"


async def test_an_orphan_with_corrupt_progress_is_failed_its_timers_removed_and_no_longer_an_orphan(
        store: ExecutionStore) -> None:
    row = make_row(tx="orphan", lease_until=T0 + 1, retention_time=60)
    other = make_row(tx="good", lease_until=T0 + 1)
    await store.insert(row, [])
    await store.insert(other, [])
    await store.add_timer(TimerRow("t-orphan", "wf", "orphan", "run-1", "retry", T0 + 5))
    await store.add_timer(TimerRow("t-good", "wf", "good", "run-1", "retry", T0 + 5))
    await corrupt(store, row.key, "progress", "[1, 2")
    assert set(await store.orphans(NOW, 10)) == {row.key, other.key}

    assert await store.fail_unreadable(row.key, "JSONDecodeError: progress", NOW) is True

    assert await store.orphans(NOW, 10) == [other.key]
    h = await header(store, row.key)
    assert (h["state"], h["lease_owner"], h["progress"]) == ("failed", None, "[1, 2")
    assert h["expires_at"] == pytest.approx(NOW + 60), "its retention runs from now"
    timers = [r[0] for r in await raw(store, "SELECT id FROM workflow_timer ORDER BY id")]
    assert timers == ["t-good"]
    # The former owner, should it come back, is fenced out.
    with pytest.raises(LeaseLostError):
        await write(store, row, row.version, now=NOW + 1)
    # Retention deletes it without reading it.
    assert await store.delete_expired(NOW + 61) == 1
    assert await raw(store, "SELECT id FROM workflow_execution WHERE transaction_id = 'orphan'") == []


@pytest.mark.parametrize("state", ["done", "failed", "reverted"])
async def test_a_finished_execution_is_left_as_it_is(store: ExecutionStore, state: str) -> None:
    row = make_row(tx=f"finished-{state}", state=state, owner=None, lease_until=None)
    await store.insert(row, [])
    before = await header(store, row.key)
    assert await store.fail_unreadable(row.key, "reason", NOW) is False
    assert await header(store, row.key) == before


async def test_a_deleted_or_missing_execution_is_left_alone(store: ExecutionStore) -> None:
    row = make_row(tx="deleted", deleted_at=T0)
    await store.insert(row, [])
    before = await header(store, row.key)
    assert await store.fail_unreadable(row.key, "reason", NOW) is False
    assert await header(store, row.key) == before
    assert await store.fail_unreadable(ExecutionKey("wf", "missing", "run-1"), "reason", NOW) is False
