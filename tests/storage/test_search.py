"""q through the search table (schema version 6, ``stepwork.storage.search``): the same rows and
count as a case-insensitive substring test of the ids in Python, whatever characters q holds
(``%``, ``_``, quotes, backslashes, FTS5 syntax), with or without other filters, orders and pages;
and the table follows every change of the executions (inserts, retention, deletes, soft deletes)."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
import pytest

from stepwork.storage.base import ExecutionStore, FinishData, ListQuery
from stepwork.storage.postgres import PostgresStore
from stepwork.storage.query import normalize_filters, normalize_order
from stepwork.storage.search import PENDING_TABLE, SEARCH_TABLE, sqlite_supports_search
from stepwork.storage.sqlite import SQLiteStore
from tests.storage.helpers import T0, make_row, write

# (workflow id, transaction id, run id, state): ids with the characters LIKE, SQL and FTS5 give meaning.
SPECS = [
    ("orders", "tx-100%_off", "run-a", "done"),
    ("orders", "tx_200", "run-b", "invoking"),
    ("orders", "TX-300", "run-c", "failed"),
    ("o'brien's", "tx-400", "run-d", "done"),
    ('say "hi"', "tx-500", "run-e", "done"),
    ("back\\slash", "tx-600", "run-f", "reverted"),
    ("refund", "tx-100x_off", "run-g", "done"),
    ("refund", "AND OR NOT*", "run-h", "done"),
    ("Ünïcode", "tx-800", "run-i", "done"),
    ("ship", "tx-ORDers-9", "run-j", "done"),  # q "orders": one workflow's rows and this transaction
    ("ship", "tx-1000", "REFUND-k", "invoking"),  # q "refund": one workflow's rows and this run
]
QUERIES = ["orders", "ORDERS-", "hip",
           "100%_off", "100%", "%_o", "_20", "tx-", "TX-3", "o'brien", "'s", 'say "', '"hi"', "\\sl", "k\\s",
           "AND OR", "NOT*", "or", "refund", "REFUND", "run-", "un-d", "ünï", "nothing", "tx", "ail", "don",
           "x-1", "%", "_", '"', "'",
           "s\x1ftx", "orders\x1ftx-100"]  # (across two ids: PostgreSQL's search text joins them with \x1f)


def query(filters: dict[str, Any], skip: int = 0, take: int | None = None, order: Any = None) -> ListQuery:
    return ListQuery(normalize_filters(filters), skip=skip, take=take, order=normalize_order(order),
                     with_records=False)


def expected(q: str, *, states: tuple[str, ...] | None = None, order_desc: bool = False) -> list[str]:
    """The run ids q finds, by Python's substring test (ids and state), in created_at order."""
    needle = q.lower()
    found = [s[2] for s in SPECS if any(needle in v.lower() for v in s) and (states is None or s[3] in states)]
    return found[::-1] if order_desc else found


@pytest.fixture
async def searched(store: ExecutionStore) -> ExecutionStore:
    for i, (wf, tx, run, state) in enumerate(SPECS):
        await store.insert(make_row(wf, tx, run, state=state, created_at=T0 + i, owner=None, lease_until=None), [])
    await store.insert(make_row("orders", "tx-100%_off-gone", "run-z", state="done", created_at=T0 + 50,
                                deleted_at=T0 + 60), [])  # soft-deleted: never listed
    return store


async def search_rows(store: ExecutionStore) -> int:
    """The rows of the search table (0 where it is absent)."""
    if isinstance(store, SQLiteStore):
        if store.conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (SEARCH_TABLE,)).fetchone() is None:
            return 0
        # A contentless FTS5 table has no rows to count: its document sizes are one row per document;
        # and the rows not indexed yet wait in the pending table (version 9).
        return int(store.conn.execute(f"SELECT count(*) FROM {SEARCH_TABLE}_docsize").fetchone()[0]
                   + store.conn.execute(f"SELECT count(*) FROM {PENDING_TABLE}").fetchone()[0])
    assert isinstance(store, PostgresStore)
    with psycopg.connect(store.url, autocommit=True) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {SEARCH_TABLE}").fetchone()[0])  # type: ignore[index]


async def runs(store: ExecutionStore, filters: dict[str, Any], **kw: Any) -> tuple[list[str], int]:
    rows, count = await store.list_rows(query(filters, **kw))
    return [r.run_id for r in rows], count


def test_this_sqlite_has_the_trigram_tokenizer() -> None:
    # Otherwise version 6 creates nothing on SQLite and q scans: these tests would not test the table.
    assert sqlite3.sqlite_version_info >= (3, 34) and sqlite_supports_search()


@pytest.mark.parametrize("q", QUERIES)
async def test_q_finds_exactly_the_rows_a_substring_test_finds(searched: ExecutionStore, q: str) -> None:
    want = expected(q)
    assert await runs(searched, {"q": q}) == (want, len(want))
    assert await runs(searched, {"q": q}, take=1) == (want[:1], len(want))  # the count is not the page's
    assert await runs(searched, {"q": q}, skip=1, take=1) == (want[1:2], len(want))
    assert await runs(searched, {"q": q}, order="-created_at") == (want[::-1], len(want))
    assert await runs(searched, {"q": q}, order=["transaction_id"]) == (
        [s[2] for s in sorted((s for s in SPECS if s[2] in want), key=lambda s: s[1])], len(want))
    assert await runs(searched, {"q": q}, order=["-updated_at"]) == (want[::-1], len(want))


async def test_a_unicode_q_of_three_characters_or_more_is_case_insensitive(searched: ExecutionStore) -> None:
    assert await runs(searched, {"q": "ünïc"}) == (["run-i"], 1)
    assert await runs(searched, {"q": "ÜNÏC"}) == (["run-i"], 1)


@pytest.mark.parametrize("q", ["tx-", "100%_off", "or", "refund", "don"])
async def test_q_with_other_filters_finds_the_rows_meeting_all(searched: ExecutionStore, q: str) -> None:
    want = expected(q, states=("done",))
    assert await runs(searched, {"q": q, "state": "done"}) == (want, len(want))
    assert await runs(searched, {"q": q, "state": "done"}, take=1) == (want[:1], len(want))
    assert await runs(searched, {"q": q, "workflow_id": {"$ne": "nobody"}, "state": "done"}) == (want, len(want))


async def test_retention_and_deletes_take_their_rows_out_of_the_search(searched: ExecutionStore) -> None:
    assert await search_rows(searched) == len(SPECS)  # the live rows (the soft-deleted one is not there)
    # A finished execution kept for a second, then deleted by retention.
    kept = make_row("refund", "tx-retained", "run-r", retention_time=1.0)
    await searched.insert(kept, [])
    assert await runs(searched, {"q": "retained"}) == (["run-r"], 1)
    assert await write(searched, kept, 1, state="done", finish=FinishData({"e": 1}, {"c": 1}), now=T0 + 2) == 2
    assert await searched.delete_expired(T0 + 10) == 1
    assert await runs(searched, {"q": "retained"}) == ([], 0)
    # A finished execution without retention: its row goes at the finishing write.
    gone = make_row("refund", "tx-no-retention", "run-n")
    await searched.insert(gone, [])
    assert await runs(searched, {"q": "no-retention"}) == (["run-n"], 1)
    await write(searched, gone, 1, state="done", finish=FinishData(delete=True), now=T0 + 3)
    assert await runs(searched, {"q": "no-retention"}) == ([], 0)
    assert await search_rows(searched) == len(SPECS)
    # A new run of a deleted key is found again (no stale row blocks it).
    await searched.insert(make_row("refund", "tx-no-retention", "run-n", created_at=T0 + 100), [])
    assert await runs(searched, {"q": "no-retention"}) == (["run-n"], 1)
    await searched.clear()
    assert await search_rows(searched) == 0
    assert await runs(searched, {"q": "tx-"}) == ([], 0)


async def test_a_soft_delete_by_hand_takes_the_row_out_and_an_undelete_puts_it_back(
        searched: ExecutionStore) -> None:
    async def sql(statement: str) -> None:
        if isinstance(searched, SQLiteStore):
            searched.conn.execute(statement)
            searched.conn.commit()
        else:
            assert isinstance(searched, PostgresStore)
            with psycopg.connect(searched.url, autocommit=True) as conn:
                conn.execute(statement.replace("?", "now()"))

    stamp = "?" if isinstance(searched, PostgresStore) else str(T0)
    await sql(f"UPDATE workflow_execution SET deleted_at = {stamp} WHERE run_id = 'run-b'")
    assert await runs(searched, {"q": "tx_200"}) == ([], 0)
    await sql("UPDATE workflow_execution SET deleted_at = NULL WHERE run_id = 'run-b'")
    assert await runs(searched, {"q": "tx_200"}) == (["run-b"], 1)
    await sql("UPDATE workflow_execution SET transaction_id = 'tx_201' WHERE run_id = 'run-b'")
    assert await runs(searched, {"q": "tx_200"}) == ([], 0)
    assert await runs(searched, {"q": "tx_201"}) == (["run-b"], 1)
    assert await search_rows(searched) == len(SPECS)


async def test_q_matching_many_workflow_ids_pages_and_counts_them_all(store: ExecutionStore) -> None:
    # (PostgreSQL reads each matching workflow's rows from its index, up to 32 workflows; past that
    # the general query answers)
    for i in range(40):
        await store.insert(make_row(f"many-{i:02d}", f"tx-{i}", "run", state="done", created_at=T0 + i, owner=None,
                                    lease_until=None), [])
    rows, count = await store.list_rows(query({"q": "MANY-"}, skip=5, take=10))
    assert ([r.workflow_id for r in rows], count) == ([f"many-{i:02d}" for i in range(5, 15)], 40)
    rows, count = await store.list_rows(query({"q": "many-0"}, take=3, order="-created_at"))
    assert ([r.workflow_id for r in rows], count) == (["many-09", "many-08", "many-07"], 10)


@pytest.mark.parametrize("backend", ["sqlite-memory", "sqlite-file"])
async def test_sqlite_indexes_new_rows_in_batches_and_q_sees_every_row(store: ExecutionStore) -> None:
    # Version 9: an insert records its row as pending; every SEARCH_BATCH inserts (and before q reads
    # the FTS table) the pending rows are indexed. A row deleted while pending never reaches the index.
    assert isinstance(store, SQLiteStore)
    from stepwork.storage.sqlite.connection import SEARCH_BATCH

    def pending() -> int:
        return int(store.conn.execute(f"SELECT count(*) FROM {PENDING_TABLE}").fetchone()[0])

    n = SEARCH_BATCH + 10
    for i in range(n):
        await store.insert(make_row("batch", f"tx-{i:04d}", "run", state="done", created_at=T0 + i, owner=None,
                                    lease_until=None), [])
    assert 0 < pending() < n  # one batch went into the FTS table with an insert
    indexed, waiting = "tx-0000", f"tx-{n - 1:04d}"
    for tx in (indexed, waiting):
        store.conn.execute("DELETE FROM workflow_execution WHERE transaction_id = ?", (tx,))
    store.conn.execute("UPDATE workflow_execution SET transaction_id = 'tx-renamed' WHERE transaction_id = 'tx-0001'")
    assert await runs(store, {"q": "tx-0000"}) == ([], 0)
    assert pending() == 0  # q indexed the rest first
    assert await runs(store, {"q": waiting}) == ([], 0)
    assert await runs(store, {"q": "tx-0001"}) == ([], 0)
    assert (await runs(store, {"q": "renamed"}))[1] == 1
    assert (await runs(store, {"q": "tx-0"}))[1] == n - 3
    assert await search_rows(store) == n - 2
    await store.insert(make_row("batch", "tx-late", "run", owner=None, lease_until=None), [])
    await store.fold_wal()  # (what the engine calls every third of its lease time) indexes it too
    assert pending() == 0
    assert await runs(store, {"q": "tx-late"}) == (["run"], 1)


@pytest.mark.parametrize("backend", ["sqlite-memory", "sqlite-file"])
async def test_sqlite_a_bulk_load_by_hand_is_indexed_in_chunks_before_q_reads(store: ExecutionStore) -> None:
    assert isinstance(store, SQLiteStore)
    n = 2500  # several chunks
    store.conn.execute("BEGIN IMMEDIATE")
    store.conn.executemany(
        "INSERT INTO workflow_execution (id, workflow_id, transaction_id, run_id, state, created_at, updated_at) "
        "VALUES (?, 'bulk', ?, 'run', 'done', ?, ?)", [(f"e{i}", f"bulk-tx-{i:05d}", T0 + i, T0 + i) for i in range(n)])
    store.conn.execute("COMMIT")
    await store.fold_wal()  # (the engine's periodic call) indexes one chunk only
    pending = int(store.conn.execute(f"SELECT count(*) FROM {PENDING_TABLE}").fetchone()[0])
    assert 0 < pending < n
    rows, count = await store.list_rows(query({"q": "BULK-TX-01"}, take=3))
    assert ([r.transaction_id for r in rows], count) == (["bulk-tx-01000", "bulk-tx-01001", "bulk-tx-01002"], 1000)
    assert (await runs(store, {"q": "k-tx-02499"})) == (["run"], 1)
    assert int(store.conn.execute(f"SELECT count(*) FROM {PENDING_TABLE}").fetchone()[0]) == 0
    assert await search_rows(store) == n
