"""Group commit on PostgreSQL (``stepwork.storage.postgres.group_commit``): checkpoints of different
executions that are ready while the connection is busy go to the server in one transaction, and each
caller still learns about its own write (fencing, conflicts, errors), only after the commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import psycopg
import pytest

from stepwork.errors import StepworkError
from stepwork.storage.base import LeaseLostError, StepRow
from stepwork.storage.postgres import PostgresStore
from stepwork.storage.postgres.group_commit import MAX_BATCH
from tests.storage.conftest import BACKENDS, reset_postgres
from tests.storage.helpers import OTHER, OWNER, T0, make_row, write

pytestmark = pytest.mark.skipif("postgres" not in BACKENDS, reason="PostgreSQL left out (STEPWORK_TEST_BACKENDS)")

N = 20


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[PostgresStore]:
    await reset_postgres(pg_url)
    store = PostgresStore(pg_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def batched(store: PostgresStore, calls: list[Awaitable[Any]]) -> list[Any]:
    """Run ``calls`` while the store's connection is busy, so that they queue, then let them go:
    their results (or exceptions), in order."""
    async with store._lock:
        tasks = [asyncio.ensure_future(c) for c in calls]
        await asyncio.sleep(0.02)
        assert not any(t.done() for t in tasks)  # all waiting for the connection
    return list(await asyncio.gather(*tasks, return_exceptions=True))


async def xact_commit(store: PostgresStore) -> int:
    """Transactions committed in the store's database so far (its own pending statistics flushed)."""
    await store._one("SELECT pg_stat_force_next_flush()", ())
    row = await store._one("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()", ())
    return int(row[0])


async def test_checkpoints_ready_together_are_one_commit(pg: PostgresStore) -> None:
    rows = [make_row(tx=f"tx-{i}") for i in range(N)]
    group = pg.group_commit
    # the statements' shapes prepared first (a prepare is a transaction of its own, once per connection)
    primer = make_row(tx="primer")
    await pg.insert(primer, [StepRow(0, {"id": "a"})])
    await write(pg, primer, 1, steps=(StepRow(1, {"id": "b"}, output="2"),))
    before = await xact_commit(pg)
    await batched(pg, [pg.insert(r, [StepRow(0, {"id": "a"})]) for r in rows])
    versions = await batched(pg, [write(pg, r, 1, steps=(StepRow(1, {"id": "b"}, output="2"),)) for r in rows])
    after = await xact_commit(pg)
    assert versions == [2] * N
    assert (group.batches, group.batched, group.largest, group.retried) == (2, 2 * N, N, 0)
    # two commits for the 2 x N checkpoints; the two statistics reads add one each
    assert after - before - 2 == 2
    for r in rows:
        got = await pg.get(r.key)
        assert got is not None and got.version == 2 and got.progress == {"cursor": 1}
        assert [s.index for s in await pg.steps(r.key)] == [0, 1]


async def test_a_checkpoint_on_an_idle_connection_goes_alone(pg: PostgresStore) -> None:
    row = make_row()
    await pg.insert(row, [])
    assert await write(pg, row, 1) == 2
    group = pg.group_commit
    assert (group.alone, group.batches, group.queued) == (2, 0, 0)


async def test_after_a_queued_checkpoint_a_sequential_writer_goes_straight_to_the_connection(
        pg: PostgresStore) -> None:
    # One caller's first write is queued (the connection was busy), then it writes on, one write
    # right after the other: each finds the connection idle and goes alone, not through the writer
    # task (which used to live on as long as its one caller queued the next write in time).
    row = make_row()
    await pg.insert(row, [])
    group = pg.group_commit

    async def writes() -> int:
        version = 1
        for _ in range(6):
            version = await write(pg, row, version)
        return version

    async with pg._lock:
        task = asyncio.ensure_future(writes())
        await asyncio.sleep(0.02)
    assert await task == 7
    assert (group.queued, group.batches) == (1, 0)


async def test_a_fenced_out_write_and_a_duplicate_insert_fail_alone_in_their_batch(pg: PostgresStore) -> None:
    rows = [make_row(tx=f"tx-{i}") for i in range(N)]
    for r in rows:
        await pg.insert(r, [])
    duplicate = make_row(tx="tx-3", run="run-2")  # the key of an unfinished execution: a conflict
    # rows[5]'s write is at a stale version, rows[7]'s by another owner than the lease's
    calls: list[Awaitable[Any]] = [write(pg, r, 0 if i == 5 else 1, owner=OTHER if i == 7 else OWNER)
                                   for i, r in enumerate(rows)]
    calls.append(pg.insert(duplicate, []))
    calls.append(pg.insert(make_row(tx="tx-new"), []))
    results = await batched(pg, calls)
    assert pg.group_commit.batches == 1 and pg.group_commit.retried == 0
    assert isinstance(results[5], LeaseLostError) and isinstance(results[7], LeaseLostError)
    assert isinstance(results[N], StepworkError) and results[N].type == "conflict"
    assert results[N + 1] is None
    assert [v for i, v in enumerate(results[:N]) if i not in (5, 7)] == [2] * (N - 2)
    for i, r in enumerate(rows):
        got = await pg.get(r.key)
        assert got is not None and got.version == (1 if i in (5, 7) else 2)
    assert await pg.get(duplicate.key) is None
    assert await pg.get(make_row(tx="tx-new").key) is not None


async def test_a_statement_the_server_rejects_fails_only_its_caller(pg: PostgresStore, pg_url: str) -> None:
    rows = [make_row(tx=f"tx-{i}") for i in range(N)]
    for r in rows:
        await pg.insert(r, [])
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
        await admin.execute(
            "CREATE OR REPLACE FUNCTION stepwork_test_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.transaction_id = 'tx-4' THEN RAISE EXCEPTION 'poisoned step row'; END IF; RETURN NEW; END $$")
        await admin.execute("CREATE TRIGGER stepwork_test_poison BEFORE INSERT ON workflow_execution_step "
                            "FOR EACH ROW EXECUTE FUNCTION stepwork_test_poison()")
        try:
            results = await batched(pg, [write(pg, r, 1, steps=(StepRow(0, {"id": "a"}),)) for r in rows])
        finally:
            await admin.execute("DROP TRIGGER stepwork_test_poison ON workflow_execution_step")
    assert isinstance(results[4], StepworkError) and results[4].type == "database_error"
    assert "poisoned step row" in results[4].message
    assert [v for i, v in enumerate(results) if i != 4] == [2] * (N - 1)
    group = pg.group_commit
    assert group.retried == N and group.batches == 0  # rolled back, then each sent alone
    assert (await pg.get(rows[4].key)).version == 1  # type: ignore[union-attr]
    assert await pg.steps(rows[4].key) == []
    assert (await pg.get(rows[3].key)).version == 2  # type: ignore[union-attr]


async def test_a_value_that_cannot_be_sent_fails_only_its_caller(pg: PostgresStore) -> None:
    rows = [make_row(tx=f"tx-{i}") for i in range(3)]
    for r in rows:
        await pg.insert(r, [])
    bad = (StepRow(0, {}, output='"\ud800"'),)  # a lone surrogate cannot be encoded as UTF-8
    results = await batched(pg, [write(pg, rows[0], 1), write(pg, rows[1], 1, steps=bad), write(pg, rows[2], 1)])
    assert results[0] == 2 and results[2] == 2
    assert isinstance(results[1], StepworkError) and results[1].type == "database_error"
    assert pg.group_commit.batches == 1


async def test_a_broken_connection_fails_every_caller_of_the_batch(pg: PostgresStore, pg_url: str) -> None:
    rows = [make_row(tx=f"tx-{i}") for i in range(N)]
    for r in rows:
        await pg.insert(r, [])
    async with pg._lock:
        tasks = [asyncio.ensure_future(write(pg, r, 1)) for r in rows]
        await asyncio.sleep(0.02)
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(e, StepworkError) and e.type == "database_error" for e in results), results
    assert len({id(e) for e in results}) == N  # each caller its own error object
    # the store reconnects; nothing of the batch was written
    assert [(await pg.get(r.key)).version for r in rows] == [1] * N  # type: ignore[union-attr]
    assert await write(pg, rows[0], 1) == 2


async def test_a_caller_cancelled_before_its_batch_is_sent_writes_nothing(pg: PostgresStore) -> None:
    rows = [make_row(tx=f"tx-{i}") for i in range(3)]
    for r in rows:
        await pg.insert(r, [])
    async with pg._lock:
        tasks = [asyncio.ensure_future(write(pg, r, 1)) for r in rows]
        await asyncio.sleep(0.02)
        tasks[1].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == 2 and results[2] == 2 and isinstance(results[1], asyncio.CancelledError)
    assert (await pg.get(rows[1].key)).version == 1  # type: ignore[union-attr]


async def test_a_batch_holds_at_most_max_batch_statements(pg: PostgresStore) -> None:
    n = MAX_BATCH + 10
    rows = [make_row(tx=f"tx-{i}", lease_until=T0 + 30) for i in range(n)]
    results = await batched(pg, [pg.insert(r, []) for r in rows])
    assert results == [None] * n
    group = pg.group_commit
    assert group.largest == MAX_BATCH and group.batches == 2 and group.batched == n
