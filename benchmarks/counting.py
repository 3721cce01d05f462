"""What the store sends to its database: statements, commits and (PostgreSQL) round trips.

Used by :mod:`benchmarks.stored` in an untimed pass after the timed runs (the same runs again, fewer
of them), so the counting never touches the timing. The store's code is not changed: the counting
hooks onto the connection the store holds, for the length of an ``async with count_store(engine)``
block.

- SQLite: ``sqlite3.Connection.set_trace_callback`` on the store's connection, which reports every
  statement SQLite runs (``BEGIN IMMEDIATE`` and ``COMMIT`` included, and each row of an
  ``executemany``). A commit is a ``COMMIT`` (or ``END``), or a write statement run outside a
  transaction (an implicit commit).
- PostgreSQL: commits are ``pg_stat_database.xact_commit`` of the bench database, read before and
  after the block (every transaction the server committed for that database; the store is its only
  client). The statements are ``pg_stat_statements`` calls for that database when the server loads
  it (``shared_preload_libraries``; the extension is then created in the throwaway database),
  otherwise the ``execute`` calls on the store's psycopg connection, counted by a wrapper installed
  on that connection object for the block. Round trips come from the wrapper: one per ``execute``
  (the store does not pipeline), two more per ``transaction()`` block (its ``BEGIN`` and
  ``COMMIT``).

Whatever the engine's background loops (timer poll, lease renewal) send during the block is counted
too: it is the store's traffic, and the by-kind breakdown shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from stepwork.engine.engine import WorkflowEngine
from stepwork.storage.sqlite.connection import SQLiteDatabase

__all__ = ["Counted", "count_store", "statement_kind"]

_CTE = re.compile(r"\bAS\s*\(\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(\w+)", re.IGNORECASE)
_TARGET = re.compile(r"\b(?:INTO|FROM|UPDATE)\s+(\w+)", re.IGNORECASE)
_WRITES = {"INSERT", "UPDATE", "DELETE", "REPLACE", "WITH"}
_CONTROL = {"COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"}


def statement_kind(sql: str) -> str:
    """A short name for a statement: its verb and the table it works on (``UPDATE workflow_execution``),
    the parts of a ``WITH`` (``WITH UPDATE workflow_execution + INSERT workflow_execution_step``),
    ``BEGIN IMMEDIATE``, ``COMMIT``, a ``PRAGMA``."""
    text = " ".join(sql.split())
    verb = text.split(" ", 1)[0].upper() if text else "?"
    if verb == "WITH":
        parts = [f"{op.split()[0].upper()} {table}" for op, table in _CTE.findall(text)]
        return "WITH " + " + ".join(parts) if parts else "WITH"
    if verb in _CONTROL:
        return verb
    if verb in ("BEGIN", "PRAGMA"):
        return text.split("=", 1)[0].strip()[:48]
    m = _TARGET.search(text)
    return f"{verb} {m.group(1)}" if m else verb


@dataclass
class Counted:
    """What one counting block saw."""

    backend: str
    statements: int = 0
    commits: int = 0
    round_trips: int | None = None
    client_commits: int | None = None  # PostgreSQL: the wrapper's count (autocommit executes + blocks)
    kinds: Counter[str] = field(default_factory=Counter)
    method: str = ""

    def per(self, n: float, unit: str, suffix: str = "", kinds: bool = False) -> dict[str, Any]:
        """``statements_per_<unit>``, ``commits_per_<unit>`` (and ``round_trips_per_<unit>``, and with
        ``kinds`` ``statements_by_kind_per_<unit>``) over ``n`` units, the names ending in ``suffix``."""
        nd = 3 if unit == "step" else 2
        out: dict[str, Any] = {f"statements_per_{unit}{suffix}": round(self.statements / n, nd),
                               f"commits_per_{unit}{suffix}": round(self.commits / n, nd)}
        if self.round_trips is not None:
            out[f"round_trips_per_{unit}{suffix}"] = round(self.round_trips / n, nd)
        if self.client_commits is not None:
            out[f"client_commits_per_{unit}{suffix}"] = round(self.client_commits / n, nd)
        if kinds:
            out[f"statements_by_kind_per_{unit}{suffix}"] = {k: round(v / n, nd) for k, v in self.kinds.most_common()}
        return out

    def fields(self, runs: int, steps_per_run: float, suffix: str = "") -> dict[str, Any]:
        """The JSON line's fields for ``runs`` runs of ``steps_per_run`` steps (names end in ``suffix``)."""
        return {**self.per(runs * steps_per_run, "step", suffix), **self.per(runs, "run", suffix, kinds=True),
                f"counted_runs{suffix}": runs}


@contextlib.asynccontextmanager
async def count_store(engine: WorkflowEngine) -> AsyncIterator[Counted]:
    """Count what ``engine``'s store sends to its database inside the block (see the module doc)."""
    store = engine.store
    if isinstance(store, SQLiteDatabase):
        with _count_sqlite(store) as counted:
            yield counted
        return
    from stepwork.storage.postgres.connection import PostgresDatabase

    if not isinstance(store, PostgresDatabase):
        raise TypeError(f"cannot count the statements of a {type(store).__name__}")
    async with _count_postgres(store) as counted:
        yield counted


# -------------------------------------------------------------------------------------- SQLite
@contextlib.contextmanager
def _count_sqlite(store: SQLiteDatabase) -> Iterator[Counted]:
    conn = store.conn
    counted = Counted("sqlite", method="sqlite3 set_trace_callback on the store's connection (every statement "
                                       "SQLite runs); commits: COMMIT statements and writes outside a transaction")

    def trace(sql: str) -> None:
        kind = statement_kind(sql)
        counted.statements += 1
        counted.kinds[kind] += 1
        if kind in ("COMMIT", "END") or (not conn.in_transaction and kind.split(" ", 1)[0] in _WRITES):
            counted.commits += 1

    conn.set_trace_callback(trace)
    try:
        yield counted
    finally:
        conn.set_trace_callback(None)


# ---------------------------------------------------------------------------------- PostgreSQL
class _ConnectionWrapper:
    """Counts the ``execute`` calls and ``transaction()`` blocks of one psycopg connection object, by
    shadowing those two methods on the instance (removed again by :meth:`remove`)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.executes = 0
        self.blocks = 0
        self.outside_blocks = 0  # executes in autocommit, outside a transaction() block: one commit each
        self.shared = 0  # statements that rode in another's round trip and commit (a group commit's)
        self.kinds: Counter[str] = Counter()
        self.depth = 0
        real_execute, real_transaction = conn.execute, conn.transaction

        async def execute(query: Any, *args: Any, **kwargs: Any) -> Any:
            self.count(query if isinstance(query, str) else repr(query))
            return await real_execute(query, *args, **kwargs)

        @contextlib.asynccontextmanager
        async def transaction(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            self.blocks += 1
            self.kinds["BEGIN (transaction block)"] += 1
            self.kinds["COMMIT (transaction block)"] += 1
            self.depth += 1
            try:
                async with real_transaction(*args, **kwargs) as tx:
                    yield tx
            finally:
                self.depth -= 1

        conn.execute = execute
        conn.transaction = transaction

    def remove(self) -> None:
        for name in ("execute", "transaction"):
            self.conn.__dict__.pop(name, None)

    def count(self, query: str) -> None:
        """One statement sent (by psycopg's execute or by the store's libpq path)."""
        self.executes += 1
        if self.depth == 0:
            self.outside_blocks += 1
        self.kinds[statement_kind(query)] += 1


class _WireCounter:
    """Stands for the store's libpq path (``store._wire``, see ``stepwork.storage.postgres.wire``)
    during the pass: the checkpoints it sends count like executes."""

    def __init__(self, wire: Any, wrapper: _ConnectionWrapper) -> None:
        self.wire = wire
        self.wrapper = wrapper

    async def one(self, conn: Any, sql: str, params: Any) -> Any:
        self.wrapper.count(sql)
        return await self.wire.one(conn, sql, params)

    def encode(self, sql: str, params: Any) -> Any:
        return self.wire.encode(sql, params)

    async def send(self, conn: Any, encoded: Any) -> Any:
        self.wrapper.count(encoded.stmt.sql.decode())
        return await self.wire.send(conn, encoded)

    async def many(self, conn: Any, batch: Any) -> Any:
        """A group commit: every statement counts, the batch is one round trip and one commit."""
        for e in batch:
            self.wrapper.count(e.stmt.sql.decode())
        self.wrapper.shared += len(batch) - 1
        return await self.wire.many(conn, batch)


@contextlib.asynccontextmanager
async def _count_postgres(store: Any) -> AsyncIterator[Counted]:
    version = int((await store._one("SHOW server_version_num", ()))[0])
    pgss = await _pg_stat_statements(store)
    before = await _pg_mark(store, version, pgss)
    conn = store._conn
    wrapper = _ConnectionWrapper(conn)
    real_wire = store._wire
    store._wire = _WireCounter(real_wire, wrapper)
    counted = Counted("postgres")
    try:
        yield counted
    finally:
        wrapper.remove()
        store._wire = real_wire
    after = await _pg_mark(store, version, pgss)
    # Each mark is two statements, two transactions; the first mark's are counted in the second's
    # reading (see _pg_mark), the second's are not.
    counted.commits = after[0] - before[0] - 2
    counted.round_trips = wrapper.executes - wrapper.shared + 2 * wrapper.blocks
    counted.kinds = wrapper.kinds
    if pgss and after[1] is not None and before[1] is not None:
        counted.statements = after[1] - before[1] - 2
        source = "pg_stat_statements calls of the bench database (BEGIN/COMMIT of transaction blocks included)"
    else:
        counted.statements = wrapper.executes
        source = ("statements the store sent, through psycopg's execute or its libpq path "
                  "(pg_stat_statements not loaded by the server)")
    counted.client_commits = wrapper.outside_blocks - wrapper.shared + wrapper.blocks
    approx = "" if version >= 150000 else " (approximate before PostgreSQL 15: the statistics are sent late)"
    counted.method = (f"commits: pg_stat_database.xact_commit of the bench database{approx} (autovacuum's "
                      "transactions there included; client_commits_per_step: the store's autocommit executes "
                      f"and transaction() blocks); statements: {source}; round trips: execute calls plus "
                      "BEGIN and COMMIT of each transaction() block")
    if conn is not store._conn:
        counted.method += "; NOTE: the store replaced its connection during the count (undercounted)"


async def _pg_stat_statements(store: Any) -> bool:
    """Whether ``pg_stat_statements`` can be read: loaded by the server, the extension created (in the
    throwaway bench database) if missing."""
    loaded = (await store._one("SELECT current_setting('shared_preload_libraries')", ()))[0] or ""
    if "pg_stat_statements" not in loaded:
        return False
    try:
        await store._exec("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", ())
    except Exception:
        return False
    return True


async def _pg_mark(store: Any, version: int, pgss: bool) -> tuple[int, int | None]:
    """``(xact_commit, pg_stat_statements calls or None)`` of the bench database, on the store's
    own connection and after it flushed its pending statistics.

    Two statements: the first makes this backend flush its statistics when it goes idle, before it
    answers (``pg_stat_force_next_flush()``, PostgreSQL 15+) and reads the ``pg_stat_statements``
    total (which does not yet include that statement); the second reads ``xact_commit``, which
    includes the first statement's commit but not its own."""
    if version >= 150000:
        first = "SELECT pg_stat_force_next_flush()"
    else:
        await asyncio.sleep(0.6)  # older servers send a backend's statistics at most every 500 ms
        first = "SELECT NULL"
    if pgss:
        first += (", (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = "
                  "(SELECT oid FROM pg_database WHERE datname = current_database()))::bigint")
    else:
        first += ", NULL::bigint"
    row = await store._one(first, ())
    if version < 150000:
        await asyncio.sleep(0.6)
    commits = await store._one("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()", ())
    return int(commits[0]), None if row[1] is None else int(row[1])
