"""What an engine may take, by the definitions (workflow versions) it has: orphans, due timers and
queued runs filtered by definition hash; per-workflow limits of claims; and the worker rows."""

from __future__ import annotations

import dataclasses

from stepwork.storage.base import ExecutionKey, ExecutionStore, TimerRow, WorkerRow
from tests.storage.helpers import OTHER, OWNER, T0, make_row, timer_ids


async def _insert(store: ExecutionStore, tx: str, definition_hash: str | None, **kwargs: object) -> None:
    row = dataclasses.replace(make_row(wf="billing", tx=tx, **kwargs), definition_hash=definition_hash)  # type: ignore[arg-type]
    await store.insert(row, [])


async def test_orphans_of_the_definitions_an_engine_has(store: ExecutionStore) -> None:
    for tx, h in (("old", "hash-v1"), ("new", "hash-v2"), ("legacy", None)):
        await _insert(store, tx, h, lease_until=T0 - 1)
    found = await store.orphans(T0, 10, {"billing"}, definitions={"hash-v2"})
    assert sorted(k.transaction_id for k in found) == ["legacy", "new"]  # no hash stored: it passes
    assert sorted(k.transaction_id for k in await store.orphans(T0, 10, {"billing"}, definitions=set())) == ["legacy"]
    assert len(await store.orphans(T0, 10, {"billing"})) == 3
    assert len(await store.orphans(T0, 10, None, definitions={"hash-v1", "hash-v2"})) == 3


async def test_due_timers_of_the_definitions_an_engine_has(store: ExecutionStore) -> None:
    await _insert(store, "old", "hash-v1")
    await _insert(store, "new", "hash-v2")
    await store.add_timer(TimerRow("t-old", "billing", "old", "run-1", "retry", T0))
    await store.add_timer(TimerRow("t-new", "billing", "new", "run-1", "retry", T0))
    await store.add_timer(TimerRow("t-gone", "billing", "gone", "run-1", "retry", T0))  # its execution ended
    await store.add_timer(TimerRow("schedule:billing", "billing", "", "", "schedule", T0))
    claimed = await store.due_timers(T0 + 1, OWNER, 10, 30, {"billing"}, definitions={"hash-v2"})
    assert sorted(t.id for t in claimed) == ["schedule:billing", "t-gone", "t-new"]
    assert await timer_ids(store, T0 + 1, OTHER) == ["t-old"]  # left for an engine that has version 1


async def test_queued_runs_of_the_definitions_an_engine_has(store: ExecutionStore) -> None:
    for tx, h in (("q-old", "hash-v1"), ("q-new", "hash-v2")):
        row = dataclasses.replace(make_row(wf="billing", tx=tx, state="not_started", owner=None, lease_until=None),
                                  definition_hash=h)
        await store.enqueue(row, 0)
    claimed = await store.claim_queued(OWNER, T0 + 30, 10, {"billing"}, definitions={"hash-v2"})
    assert [c.key.transaction_id for c in claimed] == ["q-new"]
    assert await store.claim_queued(OWNER, T0 + 30, 10, {"billing"}, definitions={"hash-v2"}) == []
    assert [c.key.transaction_id for c in await store.claim_queued(OTHER, T0 + 30, 10, {"billing"})] == ["q-old"]


async def test_a_claim_keeps_a_workflow_under_its_limit(store: ExecutionStore) -> None:
    await store.insert(make_row(wf="limited", tx="running", state="invoking"), [])  # one driven already
    for n in range(4):
        for wf in ("limited", "free"):
            row = make_row(wf=wf, tx=f"{wf}-{n}", run=f"run-{n}", state="not_started", owner=None,
                           lease_until=None, created_at=T0 + n)
            await store.enqueue(row, 0)
    claimed = await store.claim_queued(OWNER, T0 + 30, 10, {"limited", "free"}, limits={"limited": 2})
    keys = sorted(c.key.transaction_id for c in claimed)
    assert keys == ["free-0", "free-1", "free-2", "free-3", "limited-0"]  # 1 running + 1 claimed = 2
    assert await store.claim_queued(OTHER, T0 + 30, 10, {"limited"}, limits={"limited": 2}) == []
    assert [c.key for c in await store.claim_queued(OTHER, T0 + 30, 10, {"limited"}, limits={"limited": 3})] == [
        ExecutionKey("limited", "limited-1", "run-1")]


async def test_worker_rows(store: ExecutionStore) -> None:
    worker = WorkerRow("w-1", "host-a", 42, 10, 30.0, [("billing", "2", "hash-v2")], T0, T0)
    await store.heartbeat(worker)
    await store.heartbeat(dataclasses.replace(worker, heartbeat_at=T0 + 10, concurrency=4))
    await store.heartbeat(WorkerRow("w-2", "host-b", 7, 1, 5.0, [], T0 - 100, T0 - 100))
    await store.insert(make_row(wf="billing", tx="held", owner="w-1"), [])
    [first, second] = await store.workers()
    assert (first.id, first.concurrency, first.heartbeat_at, first.definitions) == (
        "w-1", 4, T0 + 10, [("billing", "2", "hash-v2")])
    assert (second.id, second.started_at, second.stopped_at) == ("w-2", T0 - 100, None)
    await store.worker_stopped("w-1", T0 + 11)
    assert (await store.workers())[0].stopped_at == T0 + 11
    assert await store.owned_counts() == {"w-1": 1}
    assert await store.delete_workers(T0 - 50) == 1
    assert [w.id for w in await store.workers()] == ["w-1"]
