"""Store calls that keep a fault from stranding work, on every backend: a consumed timer is deleted in
the same commit as the checkpoint or insert that is its effect (and not at all when that write is fenced
out); a process renews only the leases it names, in one statement; recovery and timer claims can be
limited to the workflows an engine has."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from stepwork.errors import StepworkError
from stepwork.storage.base import ExecutionKey, ExecutionStore, FinishData, LeaseLostError, StepRow, TimerRow
from stepwork.storage.sqlite import SQLiteStore
from tests.storage.helpers import OTHER, OWNER, T0, make_row, timer_ids, write

# The kinds of checkpoint, as keyword arguments of ``write`` (helpers.write).
WRITE_KINDS: dict[str, dict[str, Any]] = {
    "checkpoint": {"state": "compensating"},
    "same-state": {"state": None},
    "release": {"lease_until": None},
    "finish": {"state": "done", "finish": FinishData({"e": 1}, {"c": 1})},
    "finish-and-delete": {"state": "done", "finish": FinishData(delete=True)},
}


async def add_timers(store: ExecutionStore, *ids: str) -> None:
    """Due timers of another execution (so no write deletes them as its own)."""
    for tid in ids:
        await store.add_timer(TimerRow(tid, "other", "tx", "run", "retry", T0))


async def remaining_timers(store: ExecutionStore) -> list[str]:
    """The ids of the stored timers (read without claiming them)."""
    if isinstance(store, SQLiteStore):
        return sorted(r[0] for r in store.conn.execute("SELECT id FROM workflow_timer"))
    return sorted(r[0] for r in await store._all("SELECT id FROM workflow_timer", ()))  # type: ignore[attr-defined]


# -- delete_timers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", WRITE_KINDS)
async def test_a_checkpoint_deletes_the_timers_it_names_in_its_commit(store: ExecutionStore, kind: str) -> None:
    row = make_row()
    await store.insert(row, [])
    await add_timers(store, "consumed-1", "consumed-2", "kept")
    assert await write(store, row, 1, steps=(StepRow(0, {"id": "a"}),), delete_timers=("consumed-1", "consumed-2"),
                       **WRITE_KINDS[kind]) == 2
    assert await remaining_timers(store) == ["kept"]


async def test_a_write_of_step_rows_alone_deletes_the_timers_it_names(store: ExecutionStore) -> None:
    row = make_row()
    await store.insert(row, [])
    await add_timers(store, "consumed", "kept")
    v = await store.write(row.key, OWNER, 1, state=None, progress=None, steps=[StepRow(0, {"id": "a"})],
                          lease_until=T0 + 60, now=T0, delete_timers=["consumed"])
    assert v in (1, 2)  # a store may leave the version as it is when only step rows move
    assert await remaining_timers(store) == ["kept"]
    assert await write(store, row, v) == v + 1
    assert await store.steps(row.key) == [StepRow(0, {"id": "a"})]


@pytest.mark.parametrize("kind", WRITE_KINDS)
@pytest.mark.parametrize(("version", "owner"), [(2, OWNER), (1, OTHER)])
async def test_a_fenced_out_checkpoint_deletes_no_timer(store: ExecutionStore, kind: str, version: int,
                                                        owner: str) -> None:
    row = make_row()
    await store.insert(row, [])
    await add_timers(store, "consumed")
    with pytest.raises(LeaseLostError):
        await write(store, row, version, owner=owner, delete_timers=("consumed",), **WRITE_KINDS[kind])
    with pytest.raises(LeaseLostError):  # the step-rows-only write is fenced the same way
        await store.write(row.key, owner, version, state=None, progress=None, steps=[StepRow(0, {})],
                          lease_until=T0 + 60, now=T0, delete_timers=["consumed"])
    assert await remaining_timers(store) == ["consumed"]
    assert await store.get(row.key) == row


async def test_an_insert_deletes_the_timers_it_names_unless_it_conflicts(store: ExecutionStore) -> None:
    await add_timers(store, "schedule-1", "schedule-2", "kept")
    first = make_row(run="run-1")
    await store.insert(first, [StepRow(0, {"id": "a"})], delete_timers=["schedule-1"])
    assert await remaining_timers(store) == ["kept", "schedule-2"]
    with pytest.raises(StepworkError) as info:  # a second live run of the transaction: nothing is written
        await store.insert(make_row(run="run-2"), [], delete_timers=["schedule-2"])
    assert info.value.type == "conflict"
    assert await remaining_timers(store) == ["kept", "schedule-2"]
    await store.insert(make_row(tx="tx-2"), [], delete_timers=["schedule-2", "absent"])
    assert await remaining_timers(store) == ["kept"]
    assert await store.steps(first.key) == [StepRow(0, {"id": "a"})]


# -- renew with keys ----------------------------------------------------------------------------------


@contextmanager
def statements_run(store: ExecutionStore) -> Iterator[list[str]]:
    """The statements the store sends while the block runs (transaction control left out)."""
    seen: list[str] = []
    if isinstance(store, SQLiteStore):
        def trace(sql: str) -> None:
            if sql.split()[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
                seen.append(sql)
        store.conn.set_trace_callback(trace)
        try:
            yield seen
        finally:
            store.conn.set_trace_callback(None)
        return
    conn: Any = store._conn  # type: ignore[attr-defined]
    original = conn.execute

    async def execute(query: Any, params: Any = None, **kwargs: Any) -> Any:
        seen.append(str(query))
        return await original(query, params, **kwargs)
    conn.execute = execute
    try:
        yield seen
    finally:
        del conn.execute


async def lease_until(store: ExecutionStore, key: ExecutionKey) -> float | None:
    got = await store.get(key)
    assert got is not None
    return got.lease_expires_at


async def test_renew_with_keys_extends_only_those_leases_the_owner_holds_in_one_statement(
        store: ExecutionStore) -> None:
    driving = [make_row(tx=f"driving-{i}") for i in range(300)]
    idle = make_row(tx="idle")  # held by the owner, but not named
    others = make_row(tx="others", owner=OTHER)  # named, but held by another owner
    for r in (*driving, idle, others):
        await store.insert(r, [])
    keys = [r.key for r in driving] + [others.key, driving[0].key, ExecutionKey("wf", "absent", "run-1")]
    with statements_run(store) as seen:
        await store.renew(OWNER, T0 + 500, keys)
    assert len(seen) == 1, seen
    for r in driving:
        assert await lease_until(store, r.key) == pytest.approx(T0 + 500, abs=1e-6)
    assert await lease_until(store, idle.key) == pytest.approx(T0 + 30, abs=1e-6)
    assert await store.get(others.key) == others
    got = await store.get(driving[1].key)
    assert got is not None and got.version == 1  # renewing is not a checkpoint


async def test_renew_with_no_keys_renews_nothing_and_without_keys_everything(store: ExecutionStore) -> None:
    a, b = make_row(tx="a"), make_row(tx="b")
    for r in (a, b):
        await store.insert(r, [])
    with statements_run(store) as seen:
        await store.renew(OWNER, T0 + 500, [])
    assert seen == []
    assert await lease_until(store, a.key) == pytest.approx(T0 + 30, abs=1e-6)
    await store.renew(OWNER, T0 + 600, None)
    for r in (a, b):
        assert await lease_until(store, r.key) == pytest.approx(T0 + 600, abs=1e-6)


# -- orphans and timers of some workflows -------------------------------------------------------------


async def test_orphans_of_some_workflows(store: ExecutionStore) -> None:
    for wf in ("billing", "shipping", "refunds"):
        await store.insert(make_row(wf=wf, lease_until=T0 - 1), [])
    found = await store.orphans(T0, 10, {"billing", "refunds", "unknown"})
    assert sorted(k.workflow_id for k in found) == ["billing", "refunds"]
    assert await store.orphans(T0, 10, frozenset()) == []
    assert await store.orphans(T0, 10, ["shipping"]) == [ExecutionKey("shipping", "tx-1", "run-1")]
    assert len(await store.orphans(T0, 10, None)) == 3
    assert len(await store.orphans(T0, 1, {"billing", "refunds"})) == 1


async def test_due_timers_of_some_workflows_claims_only_theirs(store: ExecutionStore) -> None:
    for i, wf in enumerate(("billing", "shipping", "refunds", "billing")):
        await store.add_timer(TimerRow(f"t{i}-{wf}", wf, f"tx-{i}", "run-1", "retry", T0 + i))
    claimed = await store.due_timers(T0 + 10, OWNER, 10, 30, {"billing", "unknown"})
    assert [t.id for t in claimed] == ["t0-billing", "t3-billing"]
    assert await store.due_timers(T0 + 10, OWNER, 10, 30, set()) == []
    # the others were left unclaimed: an engine that has their workflows claims them now
    assert await timer_ids(store, T0 + 10, OTHER) == ["t1-shipping", "t2-refunds"]
    assert await timer_ids(store, T0 + 10, OTHER) == []
