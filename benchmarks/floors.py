"""What the database alone costs a stored run: the floors a stored workload is measured against.

Run by :mod:`benchmarks.stored` after a W1/W2 workload's timed runs and counting pass, in the same
process, on the same database and through the store's own connection (untimed for the workload, but
timed here), so its figures and the workload's are measured side by side:

- **The store's statements replayed** (``sql_replay_us_per_step``): one more run of the workflow is
  made with the store's connection recording what it sends (SQLite: every ``execute`` and
  ``executemany`` of the ``sqlite3`` connection, ``BEGIN IMMEDIATE`` and ``COMMIT`` included;
  PostgreSQL: every checkpoint statement the store sends on its libpq path), then those statements
  are sent again, as they were, for as many runs as were timed, with new ids (execution id,
  transaction id, run id) for each replayed run, and nothing of the engine in between. That is what
  the database work of a run costs with stepwork's schema and statements, Python's ``sqlite3`` /
  the store's libpq call included. ``engine_us_per_step`` is the rest of the measured µs per step
  (the engine's own Python, the step functions, the in-memory path). On SQLite the replay also moves
  the rows of q's search index in the batches the store uses (one per 256 new executions).
- **One commit** (``commit_us``): a one-row ``INSERT`` committed alone into a table of two columns,
  2,000 times, on the same connection (SQLite: WAL, ``synchronous=NORMAL``; PostgreSQL: autocommit,
  through the same libpq path as the checkpoints). ``commit_floor_us_per_step`` is that times the
  commits per step of the workload (its counting pass): what its commits alone would cost if each
  were the cheapest possible.
- **SQLite, the statements without their commits** (``sql_replay_one_transaction_us_per_step``): the
  same replay again with all its runs in one transaction (``BEGIN IMMEDIATE`` and ``COMMIT`` left
  out): what the statements' own work costs; the difference to ``sql_replay_us_per_step`` is what
  committing them one boundary at a time costs (writing the changed pages to the WAL).
- **SQLite, the least a commit per step boundary can cost** (``minimal_schema_us_per_step``): the
  same number of runs of a 10-step run on a schema of two tables with nothing but their primary keys
  (an execution row inserted with step 1's start; one step row per boundary, carrying a step's
  result and the next one's start; the execution row updated with the last result): 11 statements,
  each its own commit, and no index for listing, searching, leases or retention.
- **PostgreSQL, one round trip** (``round_trip_us``): ``SELECT 1`` on the same path.

The tables of the last two (``bench_commit_floor``, ``bench_min_execution``, ``bench_min_step``)
are made in the throwaway database of the workload.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from stepwork.engine.engine import WorkflowEngine
from stepwork.engine.ids import new_ulid
from stepwork.storage.sqlite.connection import SEARCH_BATCH, SQLiteDatabase

__all__ = ["measure_floors"]

Call = tuple[str, str, Any, Any]  # how it was sent, the statement, its parameters, what it answered

COMMITS = 2000  # single-row commits timed for commit_us
_RECORD = ('{"invoke":["done","ok"],"compensate":["dormant","idle"],"attempts":1,"failures":0,'
           '"startedAt":1796532844.3088589,"lastAttempt":1796532844.3088589,"waiting":false,"retryAt":null}')


async def measure_floors(engine: WorkflowEngine, one_run: Callable[[], Awaitable[Any]], runs: int,
                         steps_per_run: float, commits_per_step: float | None) -> dict[str, Any]:
    """The floor fields of a stored W1/W2 line (see the module doc). ``one_run`` makes one run of the
    workload's workflow; ``runs`` replayed runs are timed."""
    store = engine.store
    if isinstance(store, SQLiteDatabase):
        calls = await _record_sqlite(store, one_run)
        replay_s = await _replay_sqlite(store, calls, runs)
        one_s = await _replay_sqlite_in_one_transaction(store, calls, runs)
        commit_us = _sqlite_commit_us(store)
        fields: dict[str, Any] = {
            "minimal_schema_us_per_step": round(_sqlite_minimal(store, runs), 2),
            "sql_replay_one_transaction_us_per_step": round(one_s * 1e6 / (runs * steps_per_run), 2)}
    else:
        calls = await _record_postgres(store, one_run)
        replay_s = await _replay_postgres(store, calls, runs)
        commit_us, fields = await _postgres_commit_us(store)
    fields.update({
        "sql_replay_us_per_step": round(replay_s * 1e6 / (runs * steps_per_run), 2),
        "sql_replay_statements_per_run": len(calls),
        "sql_replay_runs": runs,
        "commit_us": round(commit_us, 2),
    })
    if commits_per_step is not None:
        fields["commit_floor_us_per_step"] = round(commit_us * commits_per_step, 2)
    return fields


def _ids(calls: list[Call], first: int) -> tuple[str, str, str]:
    """The execution id, transaction id and run id of the recorded run: the insert's parameters."""
    for _, sql, params, _answer in calls[first:]:
        if sql.lstrip().upper().startswith("INSERT INTO WORKFLOW_EXECUTION "):
            return params[0], params[2], params[3]
    raise RuntimeError("the recorded run inserted no execution")


def _swap(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return ids.get(value, value)
    if isinstance(value, (list, tuple)):
        return type(value)(_swap(v, ids) for v in value)
    if isinstance(value, dict):
        return {k: _swap(v, ids) for k, v in value.items()}
    return value


def _fresh(old: tuple[str, ...], runs: int) -> list[dict[str, str]]:
    """New ids for each replayed run, in the shapes of the recorded ones (made before the clock starts)."""
    out = []
    for _ in range(runs):
        u = new_ulid()
        out.append({o: o[: len(o) - 26] + u if len(o) >= 26 else o + u for o in old})
    return out


# -------------------------------------------------------------------------------------- SQLite
class _Recorder:
    """Stands in for the store's ``sqlite3`` connection for one run, recording what is sent."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.calls: list[Call] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def execute(self, sql: str, params: Any = ()) -> Any:
        cur = self.conn.execute(sql, params)
        self.calls.append(("execute", sql, params, cur.rowcount))
        return cur

    def executemany(self, sql: str, rows: Any) -> Any:
        rows = list(rows)
        cur = self.conn.executemany(sql, rows)
        self.calls.append(("executemany", sql, rows, cur.rowcount))
        return cur


async def _record_sqlite(store: SQLiteDatabase, one_run: Callable[[], Awaitable[Any]]) -> list[Call]:
    conn = store.conn
    recorder = _Recorder(conn)
    store._conn = recorder  # type: ignore[assignment]
    try:
        await one_run()
    finally:
        store._conn = conn
    calls = recorder.calls
    # The run's own statements: not the timer loop's (workflow_timer). A lease renewal landing in the
    # ~1 ms of the run would be kept; replayed, it changes what it changed when recorded (checked).
    return [c for c in calls if "workflow_execution" in c[1] or c[1] in ("BEGIN IMMEDIATE", "COMMIT")]


async def _replay_sqlite(store: SQLiteDatabase, calls: list[Call], runs: int) -> float:
    old = _ids(calls, 0)
    fresh = _fresh(old, runs)
    plans = [[(m, sql, _swap(p, ids), n) for m, sql, p, n in calls] for ids in fresh]
    conn = store.conn
    search = store._search
    since_batch = 0
    t0 = time.perf_counter()
    for plan in plans:
        for method, sql, params, rowcount in plan:
            cur = conn.execute(sql, params) if method == "execute" else conn.executemany(sql, params)
            if cur.rowcount != rowcount:
                raise RuntimeError(f"a replayed statement changed {cur.rowcount} rows, not {rowcount}: {sql[:80]}")
        since_batch += 1
        if search and since_batch >= SEARCH_BATCH:  # the store's batches for q's index
            since_batch = 0
            conn.execute("BEGIN IMMEDIATE")
            store._index_pending(conn)
            conn.execute("COMMIT")
    return time.perf_counter() - t0


async def _replay_sqlite_in_one_transaction(store: SQLiteDatabase, calls: list[Call], runs: int) -> float:
    """The same replay with no commit in it: its runs' statements in one transaction, what their own
    work costs (the rest of the replay is what their commits cost). q's index batches are left out."""
    conn = store.conn
    search, store._search = store._search, False
    conn.execute("BEGIN IMMEDIATE")
    try:
        return await _replay_sqlite(store, [c for c in calls if c[1] not in ("BEGIN IMMEDIATE", "COMMIT")], runs)
    finally:
        conn.execute("COMMIT")
        store._search = search


def _sqlite_commit_us(store: SQLiteDatabase) -> float:
    conn = store.conn
    conn.execute("CREATE TABLE IF NOT EXISTS bench_commit_floor (id INTEGER PRIMARY KEY, v TEXT)")
    for _ in range(200):
        conn.execute("INSERT INTO bench_commit_floor (v) VALUES (?)", ("x",))
    t0 = time.perf_counter()
    for _ in range(COMMITS):
        conn.execute("INSERT INTO bench_commit_floor (v) VALUES (?)", ("x",))
    return (time.perf_counter() - t0) * 1e6 / COMMITS


def _sqlite_minimal(store: SQLiteDatabase, runs: int, steps: int = 10) -> float:
    conn = store.conn
    conn.execute("CREATE TABLE IF NOT EXISTS bench_min_execution "
                 "(id INTEGER PRIMARY KEY, state TEXT NOT NULL, version INTEGER NOT NULL, progress TEXT)")
    conn.execute("CREATE TABLE IF NOT EXISTS bench_min_step (e INTEGER, i INTEGER, record TEXT NOT NULL, "
                 "output TEXT, PRIMARY KEY (e, i)) WITHOUT ROWID")

    def run(e: int) -> None:
        conn.execute("INSERT INTO bench_min_execution VALUES (?, 'invoking', 0, ?)", (e, _RECORD))
        for i in range(steps - 1):
            conn.execute("INSERT INTO bench_min_step VALUES (?, ?, ?, ?)", (e, i, _RECORD, str(i)))
        conn.execute("UPDATE bench_min_execution SET state = 'done', version = version + 1, progress = ? "
                     "WHERE id = ?", (_RECORD, e))

    for e in range(50):
        run(e)
    t0 = time.perf_counter()
    for e in range(50, 50 + runs):
        run(e)
    return (time.perf_counter() - t0) * 1e6 / (runs * steps)


# ---------------------------------------------------------------------------------- PostgreSQL
async def _record_postgres(store: Any, one_run: Callable[[], Awaitable[Any]]) -> list[Call]:
    calls: list[Call] = []
    hot = store._hot

    async def recording(sql: str, params: dict[str, Any]) -> Any:
        sent = dict(params)
        row = await hot(sql, params)
        calls.append(("hot", sql, sent, row is not None))
        return row

    store._hot = recording
    try:
        await one_run()
    finally:
        del store._hot  # (the instance attribute: the class's method again)
    return calls


async def _replay_postgres(store: Any, calls: list[Call], runs: int) -> float:
    first = calls[0][2]
    old = (first["id"], first["tx"], first["run"]) if "id" in first else (first["tx"], first["run"])
    fresh = _fresh(old, runs)
    plans = [[(sql, _swap(p, ids), answered) for _, sql, p, answered in calls] for ids in fresh]
    hot = store._hot
    t0 = time.perf_counter()
    for plan in plans:
        for sql, params, answered in plan:
            if (await hot(sql, params) is not None) != answered:
                raise RuntimeError(f"a replayed statement answered otherwise than when recorded: {sql[:80]}")
    return time.perf_counter() - t0


async def _postgres_commit_us(store: Any) -> tuple[float, dict[str, Any]]:
    await store._exec("CREATE TABLE IF NOT EXISTS bench_commit_floor (id bigserial PRIMARY KEY, v text)", ())
    hot = store._hot
    insert = "INSERT INTO bench_commit_floor (v) VALUES (%(v)s) RETURNING id"
    for _ in range(100):
        await hot(insert, {"v": "x"})
    t0 = time.perf_counter()
    for _ in range(COMMITS):
        await hot(insert, {"v": "x"})
    commit_us = (time.perf_counter() - t0) * 1e6 / COMMITS
    t0 = time.perf_counter()
    for _ in range(COMMITS):
        await hot("SELECT 1", {})
    return commit_us, {"round_trip_us": round((time.perf_counter() - t0) * 1e6 / COMMITS, 2)}
