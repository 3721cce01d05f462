"""Listing as the HTTP list route does it (schema version 5): a page's count is taken from the page
when the page tells it, rows can be read without their records, q compares states by equality and
(on PostgreSQL) goes through the trigram index, and the queries are answered by the indexes made for
them."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stepwork.storage.base import ExecutionStore, ListQuery
from stepwork.storage.postgres import PostgresStore
from stepwork.storage.query import count_from_page, normalize_filters, normalize_order, q_states
from stepwork.storage.sqlite import SQLiteStore
from tests.storage.helpers import T0, make_row

FILTERS: list[dict[str, Any] | None] = [
    None, {"workflow_id": "order"}, {"state": "done"}, {"state": ["failed", "compensating"]}, {"q": "tx"},
    {"q": "TX-"}, {"q": "ail"}, {"q": "one"}, {"q": "nothing-matches"}, {"q": "order", "state": "invoking"},
]


def query(filters: dict[str, Any] | None = None, skip: int = 0, take: int | None = None,
          with_records: bool = True) -> ListQuery:
    return ListQuery(normalize_filters(filters), skip=skip, take=take, order=normalize_order(None),
                     with_records=with_records)


@pytest.fixture
async def listed(store: ExecutionStore) -> ExecutionStore:
    """Seven live executions created a second apart (r0 … r6), and a soft-deleted one."""
    specs = [("order", "Tx_Alpha", "invoking"), ("order", "tx_beta", "done"), ("ship", "TX-GAMMA", "failed"),
             ("ship", "tx%delta", "done"), ("refund", "tx-epsilon", "compensating"), ("order", "zeta", "done"),
             ("ship", "eta", "reverted")]
    for i, (wf, tx, state) in enumerate(specs):
        await store.insert(make_row(wf, tx, f"r{i}", state=state, created_at=T0 + i, owner=None,
                                    lease_until=None), [])
    await store.insert(make_row("order", "gone", "r9", state="done", created_at=T0 + 9, deleted_at=T0 + 10), [])
    return store


def test_the_count_is_taken_from_a_page_only_when_the_page_tells_it() -> None:
    assert count_from_page(query(take=10), 3) == 3  # a short first page: all there is
    assert count_from_page(query(skip=20, take=10), 4) == 24  # a short later page: the last rows
    assert count_from_page(query(take=10), 0) == 0  # an empty first page: nothing matches
    assert count_from_page(query(skip=20, take=10), 0) is None  # past the end: how far is unknown
    assert count_from_page(query(take=10), 10) is None  # a full page: there may be more
    assert count_from_page(query(), 5) is None and count_from_page(query(take=0), 0) is None


async def test_every_page_has_the_rows_and_the_count_of_the_whole_listing(listed: ExecutionStore) -> None:
    for filters in FILTERS:
        everything, total = await listed.list_rows(query(filters))
        assert total == len(everything)
        ids = [r.run_id for r in everything]
        for skip, take in itertools.product(range(9), range(9)):
            rows, count = await listed.list_rows(query(filters, skip, take))
            assert ([r.run_id for r in rows], count) == (ids[skip:skip + take], total), (filters, skip, take)


@pytest.mark.parametrize(("q", "expected"), [
    ("ail", ["r2"]),  # the state "failed" (a substring of a state: compared by equality)
    ("ONE", ["r1", "r3", "r5"]),  # "done"
    ("e", ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]),  # in ids and in states
    ("TX-", ["r2", "r4"]),
    ("ta", ["r1", "r3", "r5", "r6"]),  # no state has it: ids only (PostgreSQL: through the trigram index)
    ("zeta", ["r5"]),
    ("r1", ["r1"]),  # run ids
    ("hip", ["r2", "r3", "r6"]),  # workflow ids
    ("_", ["r0", "r1"]),  # literal (and no row is "not_started")
    ("%", ["r3"]),
])
async def test_q_matches_ids_by_substring_and_states_by_equality(listed: ExecutionStore, q: str,
                                                                  expected: list[str]) -> None:
    rows, count = await listed.list_rows(query({"q": q}))
    assert ([r.run_id for r in rows], count) == (expected, len(expected))


def test_q_states_are_the_states_containing_the_text() -> None:
    assert q_states("AIL") == ["failed"]
    assert q_states("ing") == ["invoking", "waiting_to_compensate", "compensating"]
    assert q_states("order") == []


async def test_rows_without_records_are_the_same_rows(listed: ExecutionStore) -> None:
    full, n = await listed.list_rows(query({"q": "tx"}, take=3))
    light, m = await listed.list_rows(query({"q": "tx"}, take=3, with_records=False))
    assert n == m
    assert [(r.id, r.state, r.created_at, r.updated_at, r.progress) for r in light] == [
        (r.id, r.state, r.created_at, r.updated_at, r.progress) for r in full]
    assert all(r.execution is None and r.context is None for r in light)
    assert all(r.execution is not None for r in full)


def _sqlite_plan(path: Path, sql: str) -> str:
    conn = sqlite3.connect(path)
    try:
        return " | ".join(str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
    finally:
        conn.close()


async def test_sqlite_lists_by_state_and_workflow_from_their_indexes(tmp_path: Path) -> None:
    path = tmp_path / "plans.db"
    store = SQLiteStore(str(path))
    await store.open()
    await store.close()
    live = "deleted_at IS NULL"
    by_state = _sqlite_plan(path, f"SELECT id FROM workflow_execution WHERE {live} AND state = 'failed' "
                                  "ORDER BY created_at, run_id LIMIT 100")
    assert "idx_wfe_state_created_at" in by_state and "TEMP B-TREE FOR ORDER BY" not in by_state
    by_workflow = _sqlite_plan(path, f"SELECT id FROM workflow_execution WHERE {live} AND workflow_id = 'x' "
                                     "ORDER BY created_at, run_id LIMIT 100")
    assert "idx_wfe_workflow_created_at" in by_workflow and "TEMP B-TREE FOR ORDER BY" not in by_workflow
    counted = _sqlite_plan(path, f"SELECT count(*) FROM workflow_execution WHERE {live} AND state = 'failed'")
    assert "idx_wfe_state_created_at" in counted


async def test_postgres_q_goes_through_the_search_tables_trigram_index(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'").fetchone()
    if available is None:
        pytest.skip("this PostgreSQL server has no pg_trgm: q scans the rows")
    from tests.storage.conftest import reset_postgres

    await reset_postgres(pg_url)
    store = PostgresStore(pg_url)
    await store.open()
    try:
        for i in range(3):
            await store.insert(make_row("order", f"tx-{i}", f"r{i}", created_at=T0 + i, owner=None,
                                        lease_until=None), [])
        rows, count = await store.list_rows(query({"q": "x-1"}))
        assert ([r.run_id for r in rows], count) == (["r1"], 1)
    finally:
        await store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:  # enough rows for an index to beat reading them all
        conn.execute("INSERT INTO workflow_execution (id, workflow_id, transaction_id, run_id, state, created_at, "
                     "updated_at) SELECT 'wf_exec_' || n, 'bulk', md5(n::text), 'run-' || n, 'done', now(), now() "
                     "FROM generate_series(1, 5000) AS n")
        conn.execute("VACUUM ANALYZE workflow_execution_search")  # (also moves the GIN pending list into the index)
        conn.execute("SET enable_seqscan = off")  # (5,000 rows still fit a few pages: the index must be usable)
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT count(*) FROM workflow_execution_search WHERE ids LIKE '%c4ca4238a0b923820dcc%'"
        ).fetchall())
        indexes = [r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                                               "AND indexname LIKE 'idx_wfe_search%'")]
    assert "idx_wfe_search_ids" in plan, (plan, indexes)
    assert indexes == ["idx_wfe_search_ids"]  # version 5's index on workflow_execution is gone
