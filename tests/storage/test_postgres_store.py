"""The execution store contract, run on every backend (see ``conftest.py``): SQLite in memory, SQLite
in a file and PostgreSQL must behave the same. PostgreSQL-only behaviour is at the end."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg
import pytest

from stepwork.errors import StepworkError
from stepwork.storage.base import (
    ExecutionKey,
    ExecutionStore,
    FinishData,
    LeaseLostError,
    ListQuery,
    StepRow,
    TimerRow,
)
from stepwork.storage.migrations import LATEST
from stepwork.storage.postgres import PostgresStore
from stepwork.storage.query import normalize_filters, normalize_order
from stepwork.storage.serialization import encode
from tests.storage.conftest import BACKENDS, StoreFactory, migration_versions, reset_postgres, schema_url
from tests.storage.helpers import OTHER, OWNER, T0, make_row, timer_ids, write

# -- schema -----------------------------------------------------------------------------------------


async def test_open_twice_is_idempotent_and_records_each_migration_once(
        store: ExecutionStore, make_store: StoreFactory, backend: str) -> None:
    row = make_row()
    await store.insert(row, [])
    await store.open()  # a second open of the same store is a no-op
    assert await migration_versions(store) == list(range(1, LATEST + 1))
    if backend != "sqlite-memory":  # a second store on the same database finds the schema applied
        again = await make_store()
        assert await migration_versions(again) == list(range(1, LATEST + 1))
        fetched = await again.get(row.key)
        assert fetched is not None and fetched.id == row.id


# -- insert and read --------------------------------------------------------------------------------


async def test_insert_then_get_latest_get_by_id_and_steps_return_what_was_written(store: ExecutionStore) -> None:
    row = make_row(retention_time=3600.0)
    steps = [StepRow(0, {"id": "a", "state": "done"}, output='{"v":1}'),
             StepRow(1, {"id": "b"}, compensate_input='"ci"', compensate_output="null")]
    await store.insert(row, steps)

    for fetched in (await store.get(row.key), await store.latest("wf", "tx-1"), await store.get_by_id(row.id)):
        assert fetched == row
    assert await store.steps(row.key) == steps
    assert await store.get(ExecutionKey("wf", "tx-1", "nope")) is None
    assert await store.latest("wf", "nope") is None
    assert await store.get_by_id("wf_exec_nope") is None


async def test_a_second_live_insert_of_the_same_transaction_is_a_conflict(store: ExecutionStore) -> None:
    await store.insert(make_row(run="run-1"), [])
    with pytest.raises(StepworkError) as info:
        await store.insert(make_row(run="run-2"), [StepRow(0, {"id": "a"})])
    assert info.value.type == "conflict"
    assert str(info.value) == "Transaction already started for transaction_id: tx-1"
    assert await store.get(ExecutionKey("wf", "tx-1", "run-2")) is None
    assert await store.steps(ExecutionKey("wf", "tx-1", "run-2")) == []
    # another workflow may use the same transaction id
    await store.insert(make_row(wf="other", run="run-2"), [])


@pytest.mark.parametrize("finished", ["done", "failed", "reverted"])
async def test_a_finished_run_does_not_block_a_new_run(store: ExecutionStore, finished: str) -> None:
    await store.insert(make_row(run="run-1", state=finished, owner=None, lease_until=None), [])
    newer = make_row(run="run-2", created_at=T0 + 5)
    await store.insert(newer, [])
    latest = await store.latest("wf", "tx-1")
    assert latest is not None and latest.run_id == "run-2"


async def test_latest_breaks_created_at_ties_by_run_id_in_byte_order(store: ExecutionStore) -> None:
    await store.insert(make_row(run="B", state="done"), [])
    await store.insert(make_row(run="a", state="done"), [])
    latest = await store.latest("wf", "tx-1")
    assert latest is not None and latest.run_id == "a"  # "a" > "B" in byte order


# -- write (checkpoints) ----------------------------------------------------------------------------


async def test_a_checkpoint_that_moves_the_state_bumps_the_version_and_keeps_the_lease(
        store: ExecutionStore) -> None:
    row = make_row()
    await store.insert(row, [])
    v = await write(store, row, 1, state="compensating", lease_until=T0 + 90, now=T0 + 2)
    assert v == 2
    got = await store.get(row.key)
    assert got is not None
    assert (got.state, got.version, got.progress, got.lease_owner) == ("compensating", 2, {"cursor": 1}, OWNER)
    assert got.updated_at == pytest.approx(T0 + 2, abs=1e-6)
    assert got.lease_expires_at == pytest.approx(T0 + 30, abs=1e-6)  # the renewal loop extends leases
    assert got.created_at == pytest.approx(T0, abs=1e-6)
    assert got.execution == row.execution  # only a finish rewrites the records


async def test_a_checkpoint_without_a_state_changes_neither_state_nor_updated_at(store: ExecutionStore) -> None:
    row = make_row()
    await store.insert(row, [])
    v = await store.write(row.key, OWNER, 1, state=None, progress={"cursor": 7}, steps=[StepRow(0, {"a": 1})],
                          lease_until=T0 + 90, now=T0 + 5)
    assert v == 2
    got = await store.get(row.key)
    assert got is not None
    assert (got.state, got.version, got.progress, got.lease_owner) == ("invoking", 2, {"cursor": 7}, OWNER)
    assert got.updated_at == pytest.approx(T0, abs=1e-6)
    assert got.lease_expires_at == pytest.approx(T0 + 30, abs=1e-6)
    assert await store.steps(row.key) == [StepRow(0, {"a": 1})]


async def test_records_given_as_json_text_are_stored_as_they_are(store: ExecutionStore) -> None:
    row = make_row()
    row.execution = '{"pre":"encoded"}'  # type: ignore[assignment]
    row.context = '{"ctx":1}'  # type: ignore[assignment]
    row.progress = '{"p":0}'  # type: ignore[assignment]
    await store.insert(row, [StepRow(0, '{"r":0}')])  # type: ignore[arg-type]
    await store.write(row.key, OWNER, 1, state=None, progress='{"p":1}',  # type: ignore[arg-type]
                      steps=[StepRow(1, '{"r":1}')], lease_until=T0 + 30, now=T0)  # type: ignore[arg-type]
    got = await store.get(row.key)
    assert got is not None
    assert (got.execution, got.context, got.progress) == ({"pre": "encoded"}, {"ctx": 1}, {"p": 1})
    assert await store.steps(row.key) == [StepRow(0, {"r": 0}), StepRow(1, {"r": 1})]


@pytest.mark.parametrize(("version", "owner"), [(0, OWNER), (2, OWNER), (1, OTHER)])
async def test_write_with_a_stale_version_or_another_owner_loses_the_lease_and_writes_nothing(
        store: ExecutionStore, version: int, owner: str) -> None:
    row = make_row()
    await store.insert(row, [StepRow(0, {"id": "a", "v": "old"})])
    await store.add_timer(TimerRow("t", "wf", "tx-1", "run-1", "retry", T0))
    for finish in (None, FinishData({"e": 1}, {"c": 1}), FinishData({"e": 1}, {"c": 1}, delete=True)):
        with pytest.raises(LeaseLostError) as info:
            await write(store, row, version, owner=owner, state="done",
                        steps=(StepRow(0, {"id": "a", "v": "new"}), StepRow(1, {"id": "b"})), finish=finish)
        assert info.value.type == "conflict"
    assert await store.get(row.key) == row
    assert await store.steps(row.key) == [StepRow(0, {"id": "a", "v": "old"})]
    assert await store.next_due() == pytest.approx(T0, abs=1e-6)  # a fenced-out finish deletes no timer


async def test_write_after_the_lease_is_released_is_fenced(store: ExecutionStore) -> None:
    row = make_row()
    await store.insert(row, [])
    v = await write(store, row, 1, lease_until=None)
    got = await store.get(row.key)
    assert got is not None and got.lease_owner is None and got.lease_expires_at is None
    with pytest.raises(LeaseLostError):
        await write(store, row, v)


async def test_write_upserts_only_the_steps_it_is_given(store: ExecutionStore) -> None:
    row = make_row()
    await store.insert(row, [StepRow(0, {"id": "a", "n": 0}, output='"first"')])
    v = await write(store, row, 1, steps=(StepRow(1, {"id": "b", "n": 0}),))
    v = await write(store, row, v, steps=(StepRow(0, {"id": "a", "n": 1}, output=None, compensate_input='{"k":1}'),
                                          StepRow(2, {"id": "c"}, output="3")))
    assert v == 3
    assert await store.steps(row.key) == [
        StepRow(0, {"id": "a", "n": 1}, None, '{"k":1}', None),
        StepRow(1, {"id": "b", "n": 0}),
        StepRow(2, {"id": "c"}, "3"),
    ]


async def test_a_step_given_twice_in_one_write_keeps_the_last(store: ExecutionStore) -> None:
    row = make_row()
    await store.insert(row, [])
    await write(store, row, 1, steps=(StepRow(0, {"n": 1}, "1"), StepRow(0, {"n": 2}, "2")))
    assert await store.steps(row.key) == [StepRow(0, {"n": 2}, "2")]


async def test_many_steps_in_one_insert_or_write_are_all_stored(store: ExecutionStore) -> None:
    row = make_row()
    await store.insert(row, [StepRow(i, {"i": i}, output=str(i)) for i in range(12)])
    steps = [StepRow(i, {"i": i, "w": 1}, compensate_input=f'"{i}"') for i in range(5, 20)]
    await write(store, row, 1, steps=(*steps, StepRow(19, {"last": True})))
    stored = await store.steps(row.key)
    assert stored == [*(StepRow(i, {"i": i}, output=str(i)) for i in range(5)), *steps[:-1],
                      StepRow(19, {"last": True})]


async def test_finish_with_retention_sets_the_expiry_releases_the_lease_and_deletes_timers(
        store: ExecutionStore) -> None:
    row = make_row(retention_time=100.0)
    await store.insert(row, [])
    await store.add_timer(TimerRow("t1", "wf", "tx-1", "run-1", "retry", T0 + 5, 0))
    v = await write(store, row, 1, state="done", steps=(StepRow(0, {"id": "a"}, "1"),),
                    finish=FinishData({"final": True}, {"ctx": 2}), now=T0 + 10)
    assert v == 2
    got = await store.get(row.key)
    assert got is not None
    assert (got.state, got.execution, got.context, got.lease_owner, got.lease_expires_at) == (
        "done", {"final": True}, {"ctx": 2}, None, None)
    assert await store.steps(row.key) == [StepRow(0, {"id": "a"}, "1")]
    assert await store.next_due() is None
    # expires_at = finish time + retention_time
    assert await store.delete_expired(T0 + 109) == 0
    assert await store.delete_expired(T0 + 110) == 1
    assert await store.get(row.key) is None
    assert await store.steps(row.key) == []


async def test_finish_without_retention_never_expires_and_without_records_keeps_the_stored_ones(
        store: ExecutionStore) -> None:
    row = make_row()
    await store.insert(row, [])
    await write(store, row, 1, state="failed", finish=FinishData())
    assert await store.delete_expired(T0 + 10**9) == 0
    got = await store.get(row.key)
    assert got is not None and got.state == "failed"
    assert (got.execution, got.context) == (row.execution, row.context)


async def test_a_release_sets_the_state_and_drops_the_lease(store: ExecutionStore) -> None:
    row = make_row()
    await store.insert(row, [])
    await write(store, row, 1, state="waiting_to_compensate", lease_until=None, now=T0 + 3)
    got = await store.get(row.key)
    assert got is not None
    assert (got.state, got.lease_owner, got.lease_expires_at) == ("waiting_to_compensate", None, None)
    assert got.updated_at == pytest.approx(T0 + 3, abs=1e-6)


async def test_finish_with_delete_removes_the_execution_its_steps_and_timers(store: ExecutionStore) -> None:
    row = make_row()
    other = make_row(tx="tx-2")
    await store.insert(row, [StepRow(0, {"id": "a"})])
    await store.insert(other, [StepRow(0, {"id": "a"})])
    for key in (row.key, other.key):
        await store.add_timer(TimerRow(f"t-{key.transaction_id}", key.workflow_id, key.transaction_id, key.run_id,
                                       "retry", T0))
    v = await write(store, row, 1, state="done", steps=(StepRow(1, {"id": "b"}),),
                    finish=FinishData({"e": 1}, {"c": 1}, delete=True))
    assert v == 2
    assert await store.get(row.key) is None
    assert await store.steps(row.key) == []
    assert await timer_ids(store, T0 + 1) == ["t-tx-2"]
    assert await store.get(other.key) == other
    assert await store.steps(other.key) == [StepRow(0, {"id": "a"})]


async def test_concurrent_writes_with_the_same_fence_let_exactly_one_win(
        store: ExecutionStore, make_store: StoreFactory, backend: str) -> None:
    second = store if backend == "sqlite-memory" else await make_store()
    row = make_row()
    await store.insert(row, [])
    results = await asyncio.gather(
        *(write(s, row, 1, steps=(StepRow(0, {"by": i}),)) for i, s in enumerate([store, second] * 4)),
        return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["LeaseLostError"] * 7 + ["int"]
    winner = next(i for i, r in enumerate(results) if r == 2)
    assert await store.steps(row.key) == [StepRow(0, {"by": winner})]


# -- leases -----------------------------------------------------------------------------------------


async def test_acquire_takes_a_free_lease_or_an_expired_one_and_never_a_live_one(store: ExecutionStore) -> None:
    free = make_row(tx="free", owner=None, lease_until=None)
    held = make_row(tx="held", owner=OTHER, lease_until=T0 + 30)
    expired = make_row(tx="expired", owner=OTHER, lease_until=T0 - 1)
    mine = make_row(tx="mine", owner=OWNER, lease_until=T0 + 30)
    for r in (free, held, expired, mine):
        await store.insert(r, [])

    assert await store.acquire(free.key, OWNER, T0 + 60, T0) == 2
    assert await store.acquire(held.key, OWNER, T0 + 60, T0) is None
    assert await store.acquire(expired.key, OWNER, T0 + 60, T0) == 2
    assert await store.acquire(mine.key, OWNER, T0 + 60, T0) == 2
    assert await store.acquire(ExecutionKey("wf", "absent", "run-1"), OWNER, T0 + 60, T0) is None
    got = await store.get(expired.key)
    assert got is not None and got.lease_owner == OWNER
    assert got.lease_expires_at == pytest.approx(T0 + 60, abs=1e-6)
    untouched = await store.get(held.key)
    assert untouched == held
    # the previous holder of the expired lease is fenced out now
    with pytest.raises(LeaseLostError):
        await write(store, expired, 1, owner=OTHER)


async def test_acquire_skips_finished_executions_unless_include_done_for_a_done_one(store: ExecutionStore) -> None:
    rows = {s: make_row(tx=s, state=s, owner=None, lease_until=None) for s in ("done", "failed", "reverted")}
    for r in rows.values():
        await store.insert(r, [])
    for r in rows.values():
        assert await store.acquire(r.key, OWNER, T0 + 60, T0) is None
    assert await store.acquire(rows["done"].key, OWNER, T0 + 60, T0, include_done=True) == 2
    assert await store.acquire(rows["failed"].key, OWNER, T0 + 60, T0, include_done=True) is None
    assert await store.acquire(rows["reverted"].key, OWNER, T0 + 60, T0, include_done=True) is None


async def test_acquire_skips_soft_deleted_executions(store: ExecutionStore) -> None:
    row = make_row(owner=None, lease_until=None, deleted_at=T0)
    await store.insert(row, [])
    assert await store.acquire(row.key, OWNER, T0 + 60, T0) is None


async def test_renew_extends_every_lease_of_the_owner_and_no_other(store: ExecutionStore) -> None:
    a, b = make_row(tx="a"), make_row(tx="b")
    c = make_row(tx="c", owner=OTHER)
    for r in (a, b, c):
        await store.insert(r, [])
    await store.renew(OWNER, T0 + 500)
    for r in (a, b):
        got = await store.get(r.key)
        assert got is not None and got.lease_expires_at == pytest.approx(T0 + 500, abs=1e-6)
        assert got.version == 1  # renewing is not a checkpoint
    assert await store.get(c.key) == c


async def test_orphans_are_unfinished_executions_whose_lease_expired(store: ExecutionStore) -> None:
    rows = [
        make_row(tx="orphan-1", lease_until=T0 - 10),
        make_row(tx="orphan-2", owner=OTHER, lease_until=T0 - 1),
        make_row(tx="live", lease_until=T0 + 10),
        make_row(tx="free", owner=None, lease_until=None),
        make_row(tx="finished", state="done", lease_until=T0 - 10),
        make_row(tx="deleted", lease_until=T0 - 10, deleted_at=T0 - 5),
    ]
    for r in rows:
        await store.insert(r, [])
    found = await store.orphans(T0, 10)
    assert sorted(k.transaction_id for k in found) == ["orphan-1", "orphan-2"]
    assert all(isinstance(k, ExecutionKey) and k.workflow_id == "wf" for k in found)
    assert len(await store.orphans(T0, 1)) == 1


# -- listing ----------------------------------------------------------------------------------------


def query(filters: dict[str, Any] | None = None, order: Any = None, skip: int = 0, take: int | None = None,
          with_records: bool = True) -> ListQuery:
    return ListQuery(normalize_filters(filters), skip=skip, take=take, order=normalize_order(order),
                     with_records=with_records)


@pytest.fixture
async def listed(store: ExecutionStore) -> ExecutionStore:
    """Five live executions created a second apart (r0 … r4), and a soft-deleted one."""
    specs = [("order", "Tx_Alpha", "invoking"), ("order", "tx_beta", "done"), ("ship", "TX-GAMMA", "failed"),
             ("ship", "tx%delta", "done"), ("refund", "tx-epsilon", "compensating")]
    for i, (wf, tx, state) in enumerate(specs):
        await store.insert(make_row(wf, tx, f"r{i}", state=state, created_at=T0 + i,
                                    owner=None, lease_until=None), [])
    await store.insert(make_row("order", "gone", "r9", state="done", created_at=T0 + 9, deleted_at=T0 + 10), [])
    return store


async def runs(store: ExecutionStore, q: ListQuery) -> tuple[list[str], int]:
    rows, count = await store.list_rows(q)
    return [r.run_id for r in rows], count


@pytest.mark.parametrize(("filters", "expected"), [
    (None, ["r0", "r1", "r2", "r3", "r4"]),
    ({"id": "wf_exec_order_tx_beta_r1"}, ["r1"]),
    ({"id": ["wf_exec_order_tx_beta_r1", "wf_exec_ship_TX-GAMMA_r2"]}, ["r1", "r2"]),
    ({"workflow_id": "order"}, ["r0", "r1"]),
    ({"workflow_id": {"$ne": "order"}}, ["r2", "r3", "r4"]),
    ({"workflow_id": {"$nin": ["order", "ship"]}}, ["r4"]),
    ({"transaction_id": "tx_beta"}, ["r1"]),
    ({"transaction_id": {"$in": []}}, []),
    ({"transaction_id": {"$nin": []}}, ["r0", "r1", "r2", "r3", "r4"]),
    ({"run_id": "r3"}, ["r3"]),
    ({"run_id": {"$gte": "r3"}}, ["r3", "r4"]),
    ({"state": "done"}, ["r1", "r3"]),
    ({"state": ["failed", "compensating"]}, ["r2", "r4"]),
    ({"state": {"$in": ["done"]}, "workflow_id": "ship"}, ["r3"]),
    ({"created_at": T0 + 2}, ["r2"]),
    ({"created_at": {"$gt": T0 + 2}}, ["r3", "r4"]),
    ({"created_at": {"$gte": T0 + 2}}, ["r2", "r3", "r4"]),
    ({"created_at": {"$lt": T0 + 2}}, ["r0", "r1"]),
    ({"created_at": {"$lte": T0 + 2, "$gt": T0}}, ["r1", "r2"]),
    ({"created_at": {"$ne": T0 + 2}}, ["r0", "r1", "r3", "r4"]),
    ({"created_at": {"$in": [T0, T0 + 4]}}, ["r0", "r4"]),
    ({"created_at": {"$gte": "2023-11-14T22:13:21.25Z"}}, ["r1", "r2", "r3", "r4"]),  # T0 + 1 as ISO-8601
    ({"updated_at": {"$lt": T0 + 1}}, ["r0"]),
    ({"q": "ALPHA"}, ["r0"]),
    ({"q": "tx_"}, ["r0", "r1"]),  # "_" is literal, not a wildcard
    ({"q": "%"}, ["r3"]),  # so is "%"
    ({"q": "SHIP"}, ["r2", "r3"]),
    ({"q": "compens"}, ["r4"]),
    ({"q": "R4"}, ["r4"]),
    ({"q": "gone"}, []),  # soft-deleted rows are never listed
])
async def test_list_rows_filters(listed: ExecutionStore, filters: dict[str, Any] | None,
                                 expected: list[str]) -> None:
    assert await runs(listed, query(filters)) == (expected, len(expected))


async def test_list_rows_pages_orders_and_counts_before_paging(listed: ExecutionStore) -> None:
    assert await runs(listed, query(order="-created_at", skip=1, take=2)) == (["r3", "r2"], 5)
    assert await runs(listed, query({"workflow_id": ["order", "ship"]}, order={"created_at": "desc"}, take=3)) == (
        ["r3", "r2", "r1"], 4)
    assert await runs(listed, query(skip=4)) == (["r4"], 5)
    assert await runs(listed, query(skip=10)) == ([], 5)
    assert await runs(listed, query(take=0)) == ([], 5)
    # text is ordered byte-wise: upper case first ("TX-GAMMA" < "Tx_Alpha" < "tx%delta" < …)
    assert await runs(listed, query(order=["transaction_id"])) == (["r2", "r0", "r3", "r4", "r1"], 5)
    assert await runs(listed, query(order=["workflow_id", "-run_id"])) == (["r1", "r0", "r4", "r3", "r2"], 5)
    assert await runs(listed, ListQuery({}, order=())) == (["r0", "r1", "r2", "r3", "r4"], 5)


async def test_list_rows_without_records_leaves_execution_and_context_out(listed: ExecutionStore) -> None:
    rows, _ = await listed.list_rows(query({"run_id": "r0"}, with_records=False))
    assert [(r.execution, r.context, r.progress) for r in rows] == [(None, None, {"cursor": 0})]
    rows, _ = await listed.list_rows(query({"run_id": "r0"}))
    assert rows[0].execution is not None and rows[0].context == {"payload": {"x": 1}}


# -- retention --------------------------------------------------------------------------------------


async def test_delete_expired_deletes_only_finished_executions_whose_retention_ran_out(
        store: ExecutionStore) -> None:
    expired = {s: make_row(tx=f"exp-{s}", retention_time=10.0) for s in ("done", "failed", "reverted")}
    keep_running = make_row(tx="running", retention_time=10.0)
    keep_fresh = make_row(tx="fresh", retention_time=1000.0)
    for r in (*expired.values(), keep_running, keep_fresh):
        await store.insert(r, [StepRow(0, {"id": "a"})])
    for state, r in expired.items():
        await write(store, r, 1, state=state, finish=FinishData({}, {}), now=T0)
    await write(store, keep_running, 1, state="invoking", now=T0)
    await write(store, keep_fresh, 1, state="done", finish=FinishData({}, {}), now=T0)

    assert await store.delete_expired(T0 + 10) == 3
    assert await store.delete_expired(T0 + 10) == 0
    for r in expired.values():
        assert await store.get(r.key) is None
        assert await store.steps(r.key) == []
    for r in (keep_running, keep_fresh):
        assert await store.get(r.key) is not None
        assert await store.steps(r.key) == [StepRow(0, {"id": "a"})]


# -- timers -----------------------------------------------------------------------------------------


async def test_timers_are_claimed_when_due_in_due_order_and_not_twice_within_the_claim(
        store: ExecutionStore) -> None:
    assert await store.next_due() is None
    await store.add_timer(TimerRow("late", "wf", "tx-1", "run-1", "step_timeout", T0 + 20, 3, {"a": [1, 2]}))
    await store.add_timer(TimerRow("soon", "wf", "tx-1", "run-1", "retry", T0 + 5, None))
    await store.add_timer(TimerRow("first", "wf", "tx-2", "run-1", "retry", T0 + 1, 0, {"n": 1}))
    assert await store.next_due() == pytest.approx(T0 + 1, abs=1e-6)

    assert await store.due_timers(T0, OWNER, 10, 30) == []
    claimed = await store.due_timers(T0 + 10, OWNER, 10, 30)
    assert [t.id for t in claimed] == ["first", "soon"]
    first = claimed[0]
    assert (first.workflow_id, first.transaction_id, first.run_id, first.kind, first.step_index, first.data) == (
        "wf", "tx-2", "run-1", "retry", 0, {"n": 1})
    assert first.due_at == pytest.approx(T0 + 1, abs=1e-6)
    assert claimed[1].step_index is None and claimed[1].data == {}

    assert await timer_ids(store, T0 + 21, OTHER) == ["late"]  # the others are claimed until T0 + 40
    assert await timer_ids(store, T0 + 39, OTHER) == []
    assert await timer_ids(store, T0 + 60, OTHER, limit=2) == ["first", "soon"]  # claims expired
    late = (await store.due_timers(T0 + 100, OWNER, 10, 30))[-1]
    assert (late.id, late.kind, late.step_index, late.data) == ("late", "step_timeout", 3, {"a": [1, 2]})


async def test_adding_a_timer_again_moves_it_and_drops_its_claim(store: ExecutionStore) -> None:
    await store.add_timer(TimerRow("t", "wf", "tx-1", "run-1", "retry", T0, 0, {"try": 1}))
    assert await timer_ids(store, T0) == ["t"]
    assert await timer_ids(store, T0) == []
    await store.add_timer(TimerRow("t", "wf", "tx-1", "run-1", "retry", T0 + 3, 0, {"try": 2}))
    assert await store.next_due() == pytest.approx(T0 + 3, abs=1e-6)
    assert await timer_ids(store, T0 + 2) == []
    [t] = await store.due_timers(T0 + 3, OWNER, 10, 30)
    assert (t.id, t.data) == ("t", {"try": 2})


async def test_delete_timer_and_delete_timers_by_execution_and_kind(store: ExecutionStore) -> None:
    key = ExecutionKey("wf", "tx-1", "run-1")
    other = ExecutionKey("wf", "tx-2", "run-1")
    for tid, k, kind in [("a", key, "retry"), ("b", key, "step_timeout"), ("c", key, "retry"),
                         ("d", other, "retry")]:
        await store.add_timer(TimerRow(tid, k.workflow_id, k.transaction_id, k.run_id, kind, T0))
    await store.delete_timer("a")
    await store.delete_timer("absent")
    await store.delete_timers(key, "retry")
    assert sorted(await timer_ids(store, T0, claim_for=0)) == ["b", "d"]
    await store.delete_timers(key)
    assert await timer_ids(store, T0 + 1) == ["d"]
    await store.delete_timer("d")
    assert await store.next_due() is None


async def test_two_stores_claiming_timers_at_once_never_claim_the_same_one(
        store: ExecutionStore, make_store: StoreFactory, backend: str) -> None:
    second = store if backend == "sqlite-memory" else await make_store()
    for i in range(40):
        await store.add_timer(TimerRow(f"t{i:02}", "wf", f"tx-{i}", "run-1", "retry", T0 + i / 100))
    batches = await asyncio.gather(*(s.due_timers(T0 + 1, f"owner-{i}", 7, 30)
                                     for i, s in enumerate([store, second] * 4)))
    ids = [t.id for batch in batches for t in batch]
    assert len(ids) == len(set(ids)) == 40


# -- payloads ---------------------------------------------------------------------------------------


async def test_payloads_with_nul_huge_integers_and_unicode_round_trip_exactly(store: ExecutionStore) -> None:
    value = {"nul": "a\u0000b", "big": 10**40, "neg": -(10**40), "text": "héllo ✓ 日本 🎉", "f": 0.1,
             "nested": ["\u0000", {"\u0000key": 2**64 + 1}]}
    text = encode(value)
    row = make_row()
    row.execution = value
    row.context = {"payload": value}
    row.progress = {"p": value}
    await store.insert(row, [StepRow(0, {"record": value}, output=text, compensate_input=text,
                                     compensate_output=text)])
    v = await write(store, row, 1, steps=(StepRow(1, {"id": "b"}, output=text),))
    [s0, s1] = await store.steps(row.key)
    assert s0.output == s0.compensate_input == s0.compensate_output == s1.output == text
    assert json.loads(s1.output or "") == value
    assert s0.record == {"record": value}
    got = await store.get(row.key)
    assert got is not None and got.execution == value and got.context == {"payload": value}
    await store.add_timer(TimerRow("t", "wf", "tx-1", "run-1", "retry", T0, 0, value))
    [timer] = await store.due_timers(T0, OWNER, 1, 1)
    assert timer.data == value
    await write(store, row, v, state="done", finish=FinishData(value, {"v": value}))
    got = await store.get(row.key)
    assert got is not None and got.execution == value and got.context == {"v": value}


# -- PostgreSQL only --------------------------------------------------------------------------------


if "postgres" in BACKENDS:  # left out with the backend, never skipped
    async def test_postgres_unreachable_is_a_readable_database_error() -> None:
        store = PostgresStore("postgresql://postgres:secret@127.0.0.1:1/nowhere")
        with pytest.raises(StepworkError) as info:
            await store.open()
        assert info.value.type == "database_error"
        message = str(info.value)
        assert message.startswith("Cannot connect to PostgreSQL at 127.0.0.1:1/nowhere: ")
        assert "refused" in message and "secret" not in message
        with pytest.raises(StepworkError, match="not open") as info:
            await store.get(ExecutionKey("wf", "tx", "run"))
        assert info.value.type == "database_error"


    async def test_postgres_accepts_sqlalchemy_style_urls(pg_url: str) -> None:
        store = PostgresStore(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
        await store.open()
        try:
            assert await store.get(ExecutionKey("wf", "tx", "absent")) is None
        finally:
            await store.close()


    async def test_postgres_engines_starting_at_once_migrate_once(pg_url: str) -> None:
        schema = "race_schema"
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await conn.execute(f"CREATE SCHEMA {schema}")
        url = schema_url(pg_url, schema)
        stores = [PostgresStore(url) for _ in range(6)]
        try:
            await asyncio.gather(*(s.open() for s in stores))
            assert await migration_versions(stores[0]) == list(range(1, LATEST + 1))
            await stores[0].insert(make_row(), [])
            assert await stores[5].get(make_row().key) is not None
        finally:
            for s in stores:
                await s.close()
            async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
                await conn.execute(f"DROP SCHEMA {schema} CASCADE")


    async def test_postgres_database_errors_are_stepwork_errors_and_the_store_reconnects(pg_url: str) -> None:
        await reset_postgres(pg_url)
        store = PostgresStore(pg_url)
        await store.open()
        try:
            with pytest.raises(StepworkError) as info:  # a lone surrogate cannot be encoded as UTF-8
                await store.insert(make_row(), [StepRow(0, {}, output='"\ud800"')])
            assert info.value.type == "database_error"
            assert await store.get(make_row().key) is None

            # the server drops the connection: that call fails, the next one reconnects
            async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
                await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            with pytest.raises(StepworkError) as info:
                await store.get(make_row().key)
            assert info.value.type == "database_error" and info.value.message.startswith("PostgreSQL error")
            await store.insert(make_row(), [])
            assert await store.get(make_row().key) is not None
        finally:
            await store.close()


    async def test_postgres_a_cancelled_call_leaves_the_store_usable(pg_url: str) -> None:
        await reset_postgres(pg_url)
        store = PostgresStore(pg_url)
        await store.open()
        row = make_row()
        try:
            await store.insert(row, [])
            async with await psycopg.AsyncConnection.connect(pg_url) as blocker:
                await blocker.execute("SELECT 1 FROM workflow_execution FOR UPDATE")  # holds the row lock
                task = asyncio.create_task(write(store, row, 1))
                await asyncio.sleep(0.2)
                assert not task.done()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                await blocker.rollback()
            assert await write(store, row, 1) == 2
        finally:
            await store.close()
