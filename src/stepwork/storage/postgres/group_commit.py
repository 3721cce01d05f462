"""Group commit: the checkpoints of concurrent executions written in one transaction, one round trip.

A checkpoint is one statement (see :mod:`.statements`). When the store's connection is idle, a
checkpoint is sent alone, as before: one round trip, one commit, nothing added to a sequential run.
When it is busy (another statement or batch in flight), a checkpoint joins the *pending* list, and
one writer task sends everything pending as soon as the connection is free: a pipeline of the
prepared statements, followed by one ``Sync``, so that the server runs them in one implicit
transaction and commits them together (one WAL flush) before it answers (see :meth:`.Wire.many`).
While a batch is in flight the next one gathers, so under load each commit carries the checkpoints
of every execution that was ready meanwhile.

What each caller keeps:

- **Fencing**: every statement still carries its own execution's version and lease owner; a write
  fenced out returns no row (the caller raises ``LeaseLostError``), an insert whose key exists
  returns no row (``ON CONFLICT DO NOTHING``: the caller raises ``conflict``). Neither is an error
  to the server, so neither touches the other statements of the batch.
- **Durability**: a caller's ``await`` returns only after the ``Sync`` answer, i.e. after the commit
  that holds its statement.
- **Errors**: if the server rejects a statement of a batch, the whole transaction is rolled back and
  nothing of it is stored; each statement is then sent again alone, so only the statements that fail
  on their own fail (each caller learns about its own). If the connection breaks (or the outcome is
  unknown), every caller of the batch gets the ``database_error``, as a lone statement's caller would.
- **Order**: one execution has at most one checkpoint in flight (its checkpointer waits for each
  write), so a batch never holds two writes of one execution.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import psycopg
from psycopg import pq

from stepwork.errors import StepworkError
from stepwork.storage.postgres.wire import Encoded, Row

if TYPE_CHECKING:
    from stepwork.storage.postgres.connection import Conn, PostgresDatabase

__all__ = ["MAX_BATCH", "GroupCommit"]

MAX_BATCH = 500  # statements in one transaction at most (the rest go in the next)


class _Pending(NamedTuple):
    sql: str
    params: Mapping[str, Any]
    future: asyncio.Future[Row | None]


class GroupCommit:
    """The pending checkpoint statements of one store and the task that writes them.

    Counters (for tests and benchmarks): ``alone`` statements sent alone, ``queued`` statements that
    waited in the pending list (the others went straight to the idle connection), ``batches``
    transactions of several statements, ``batched`` statements sent in them, ``largest`` the largest
    batch, ``retried`` statements sent again alone after their batch was rolled back.
    """

    __slots__ = ("_db", "_pending", "_writer", "alone", "batched", "batches", "largest", "queued", "retried")

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db
        self._pending: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self.alone = 0
        self.queued = 0
        self.batches = 0
        self.batched = 0
        self.largest = 0
        self.retried = 0

    @property
    def commits(self) -> int:
        """Transactions the checkpoints took: one per statement sent alone, one per batch."""
        return self.alone + self.batches

    def idle(self) -> bool:
        """Nothing pending and no writer at work: a statement may go straight to the connection."""
        return self._writer is None and not self._pending

    async def submit(self, sql: str, params: Mapping[str, Any]) -> Row | None:
        """Queue the statement for the next batch; its first row (after its commit), or ``None``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Row | None] = loop.create_future()
        self._pending.append(_Pending(sql, params, future))
        self.queued += 1
        if self._writer is None:
            self._writer = loop.create_task(self._write())
        return await future

    async def _write(self) -> None:
        db = self._db
        batch: list[_Pending] = []
        done: list[tuple[asyncio.Future[Row | None], Row | None]] = []
        try:
            while True:
                # What is pending now is the batch; whatever comes while it waits for the connection
                # or is in flight goes in the next one.
                batch, done = self._take(), []
                async with db._lock:
                    done = await self._send(batch) if batch else []
                batch = []
                if self._pending or len(done) < 2:
                    # The next batch is ready (it gathered while this one was in flight): it goes at
                    # once, and the callers woken now run while it is in flight.
                    _settle_all(done)
                    if not self._pending:
                        if not done:
                            # It went alone (one caller): the writer ends, and that caller's next
                            # checkpoint goes straight to the idle connection, not through this task
                            # (measured: a sequential run's boundary cost ~10-20% less CPU).
                            return
                        await asyncio.sleep(0)  # let the woken callers queue their next checkpoint
                else:
                    # Everyone waited for this batch: wake half of them, send what they queue, and
                    # let the other half run while it is in flight. The server and this process
                    # then work at the same time, on two batches that alternate.
                    half = len(done) // 2
                    _settle_all(done[:half])
                    await asyncio.sleep(0)
                    _settle_all(done[half:])
                if not self._pending:
                    return
        finally:
            self._writer = None
            _settle_all(done)  # committed: whoever is still waiting learns it (a no-op for the settled)
            # Stopped (cancelled, or an unexpected error): nobody will send these any more.
            pending, self._pending = batch + self._pending, []
            for p in pending:
                _settle(p.future, error=_stopped())

    def _take(self) -> list[_Pending]:
        """The next batch: what is pending, in order, without the callers that stopped waiting."""
        batch = [p for p in self._pending[:MAX_BATCH] if not p.future.done()]
        del self._pending[:MAX_BATCH]
        return batch

    async def _send(self, batch: list[_Pending]) -> list[tuple[asyncio.Future[Row | None], Row | None]]:
        """Send ``batch`` (the lock held). The futures of a committed batch and their rows are
        returned, to be settled by the caller; every other outcome is settled here."""
        db = self._db
        wire = db._wire
        ready: list[tuple[_Pending, Encoded]] = []
        for p in batch:
            if p.future.done():  # the caller stopped waiting (cancelled) before it was sent
                continue
            try:
                ready.append((p, wire.encode(p.sql, p.params)))
            except UnicodeEncodeError as exc:  # this caller's values only (as _guard says it)
                _settle(p.future, error=StepworkError(StepworkError.Types.DB_ERROR,
                                                      f"PostgreSQL error: a text value cannot be encoded: {exc}"))
            except TypeError as exc:
                _settle(p.future, error=exc)
        if len(ready) == 1:
            await self._alone(*ready[0])
            return []
        if not ready:
            return []
        encoded = [e for _, e in ready]

        async def run(conn: Conn) -> list[Row | None]:
            return await wire.many(conn, encoded)

        try:
            rows = await db._guard(run)
        except StepworkError as exc:
            if not _rolled_back(db._conn, exc):
                for p, _ in ready:  # each caller its own error object (callers add to its message)
                    _settle(p.future, error=_copy(exc))
                return []
            # The server refused a statement and rolled the batch back: nothing of it is stored.
            # Each goes again alone, so that only the ones that fail alone fail.
            self.retried += len(ready)
            for p, e in ready:
                await self._alone(p, e)
            return []
        except BaseException as exc:  # not a database error: the outcome is unknown to every caller
            for p, _ in ready:
                _settle(p.future, error=_copy(exc) if isinstance(exc, StepworkError) else _stopped())
            raise
        self.batches += 1
        self.batched += len(ready)
        self.largest = max(self.largest, len(ready))
        return [(p.future, row) for (p, _), row in zip(ready, rows, strict=True)]

    async def _alone(self, p: _Pending, encoded: Encoded) -> None:
        wire = self._db._wire

        async def run(conn: Conn) -> Row | None:
            return await wire.send(conn, encoded)

        try:
            row = await self._db._guard(run)
        except Exception as exc:
            _settle(p.future, error=exc)
            return
        except BaseException:
            _settle(p.future, error=_stopped())
            raise
        self.alone += 1
        _settle(p.future, row)


def _rolled_back(conn: Conn | None, exc: StepworkError) -> bool:
    """Whether the batch that raised ``exc`` is known to be rolled back: the server answered with an
    error and the connection is idle and healthy again (not broken, no transaction left open)."""
    cause = exc.__cause__
    if not isinstance(cause, psycopg.Error) or getattr(cause, "sqlstate", None) is None:
        return False  # a connection error, or one raised before the server answered
    if conn is None or conn.closed or conn.broken:
        return False
    return conn.pgconn.transaction_status == pq.TransactionStatus.IDLE


def _copy(exc: StepworkError) -> StepworkError:
    copy = StepworkError(exc.type, exc.message)
    copy.__cause__ = exc.__cause__
    return copy


def _stopped() -> StepworkError:
    return StepworkError(StepworkError.Types.DB_ERROR, "PostgreSQL error: the checkpoint writer was stopped before "
                                                       "this checkpoint was known to be written.")


def _settle_all(done: list[tuple[asyncio.Future[Row | None], Row | None]]) -> None:
    for future, row in done:
        _settle(future, row)


def _settle(future: asyncio.Future[Row | None], row: Row | None = None, *,
            error: BaseException | None = None) -> None:
    if future.done():  # the caller stopped waiting (cancelled)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(row)
