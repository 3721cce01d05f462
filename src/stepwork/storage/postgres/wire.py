"""The checkpoint statements sent on libpq directly (``psycopg.pq``), not through psycopg's cursors.

A checkpoint is one statement whose parameters are already text. psycopg's async ``execute``
spends ~55 µs of Python per statement on this machine (a cursor, the adapters of every parameter,
its generator-driven wait); the same prepared statement sent with ``send_query_prepared`` and
awaited on the socket with the event loop costs a few µs (docs/decisions.md has the figures). The
store still owns the connection through psycopg (connecting, reads, transactions, errors): this
module only borrows its ``pgconn`` for one statement at a time, under the store's lock, and leaves
it idle again, so psycopg never sees anything but an idle connection.

Statements are written with psycopg's ``%(name)s`` placeholders (one text for both paths) and
turned into ``$n`` once. Parameters are ``str``, ``int``, ``float``, ``None`` or a list of ``str``
(a ``text[]``), sent in text format; the server infers their types from the statement (each one is
compared with a column or cast).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

from psycopg import errors, pq

if TYPE_CHECKING:
    from stepwork.storage.postgres.connection import Conn

__all__ = ["Encoded", "Row", "Wire", "positional"]

Row = tuple[bytes | None, ...]  # a result row: text columns, as bytes

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)


class Positional(NamedTuple):
    """A statement with ``$n`` placeholders and the parameter name of each ``n``."""

    sql: bytes
    names: tuple[str, ...]


@cache
def positional(sql: str) -> Positional:
    """``sql`` with its ``%(name)s`` placeholders numbered (a name used twice gets one number)."""
    numbers: dict[str, int] = {}

    def number(m: re.Match[str]) -> str:
        return f"${numbers.setdefault(m.group(1), len(numbers) + 1)}"

    text = _PLACEHOLDER.sub(number, sql)
    if "%" in text.replace("%%", ""):
        raise ValueError(f"Only %(name)s placeholders can be sent on the wire: {sql!r}")
    return Positional(text.replace("%%", "%").encode(), tuple(numbers))


def _array(items: Sequence[Any]) -> bytes:
    """An array literal of strings, numbers and NULLs (each element quoted, so any text is safe)."""
    def element(s: Any) -> str:
        if s is None:
            return "NULL"
        text = str(s).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text}"'
    return ("{" + ",".join(element(s) for s in items) + "}").encode()


def _param(value: Any) -> bytes | None:
    cls = value.__class__
    if value is None:
        return None
    if cls is str:
        return value.encode()  # type: ignore[no-any-return]
    if cls is int:
        return str(value).encode()
    if cls is float:
        return repr(value).encode()
    if cls is list or cls is tuple:
        return _array(value)
    raise TypeError(f"A parameter of type {cls.__name__} cannot be sent on the wire.")


class Encoded(NamedTuple):
    """A statement and its parameters, ready to send (see :meth:`Wire.encode`)."""

    stmt: Positional
    values: list[bytes | None]


class Wire:
    """Prepared statements on one psycopg connection, executed through its ``pgconn``."""

    __slots__ = ("_conn", "_names")

    def __init__(self) -> None:
        self._conn: Conn | None = None
        self._names: dict[bytes, bytes] = {}  # statement text -> its prepared name on _conn

    async def one(self, conn: Conn, sql: str, params: Mapping[str, Any]) -> Row | None:
        """Execute ``sql`` (prepared on first use on this connection); its first row, as text
        columns, or ``None``. A server error raises psycopg's exception for it."""
        return await self.send(conn, self.encode(sql, params))

    def encode(self, sql: str, params: Mapping[str, Any]) -> Encoded:
        """``sql`` and ``params`` as sent (``TypeError``/``UnicodeEncodeError`` for a value that cannot be)."""
        stmt = positional(sql)
        return Encoded(stmt, [_param(params[n]) for n in stmt.names])

    async def _name(self, conn: Conn, stmt: Positional) -> bytes:
        """The prepared statement of ``stmt`` on ``conn`` (prepared now, one round trip, on first use)."""
        if conn is not self._conn:  # a new connection: nothing is prepared on it yet
            self._conn = conn
            self._names = {}
        name = self._names.get(stmt.sql)
        if name is None:
            name = f"stepwork_{len(self._names)}".encode()
            pgconn = conn.pgconn
            pgconn.send_prepare(name, stmt.sql)
            _check(await _results(pgconn))
            self._names[stmt.sql] = name
        return name

    async def send(self, conn: Conn, encoded: Encoded) -> Row | None:
        """Execute one encoded statement, committed alone (autocommit); its first row or ``None``."""
        name = await self._name(conn, encoded.stmt)
        pgconn = conn.pgconn
        pgconn.send_query_prepared(name, encoded.values)
        try:
            results = await _results(pgconn)
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            await _cancel(conn)
            raise
        return _first_row(_check(results))

    async def many(self, conn: Conn, batch: Sequence[Encoded]) -> list[Row | None]:
        """Execute the statements of ``batch`` in one round trip and one transaction; the first row of
        each (or ``None``), in order, once the transaction has committed.

        They are sent in pipeline mode, one ``Bind``/``Execute`` each and one ``Sync`` at the end: the
        server runs everything before a ``Sync`` in one implicit transaction and commits it at the
        ``Sync``, whose answer comes after the commit. If a statement fails, the server skips the rest
        and rolls the transaction back; psycopg's exception for the first error is raised once every
        answer is in (the connection idle again, nothing of the batch stored)."""
        names = [await self._name(conn, e.stmt) for e in batch]  # first uses: prepared before, alone
        pgconn = conn.pgconn
        pgconn.enter_pipeline_mode()
        try:
            for name, e in zip(names, batch, strict=True):
                pgconn.send_query_prepared(name, e.values)
            pgconn.pipeline_sync()
            queries = await _pipeline_results(pgconn)
        except BaseException:
            # Interrupted in the middle of the exchange (cancelled, or the connection failed): the
            # connection's state is unknown, so it is closed (the server rolls back what it has not
            # committed); the store reconnects on its next call.
            pgconn.finish()
            raise
        pgconn.exit_pipeline_mode()
        checked = [_check(results) for results in queries]  # raises the first error
        if len(checked) != len(batch):
            raise errors.InterfaceError(f"{len(batch)} statements sent in a pipeline, {len(checked)} answered")
        return [_first_row(r) for r in checked]


def _first_row(result: pq.abc.PGresult) -> Row | None:
    if result.status == pq.ExecStatus.TUPLES_OK and result.ntuples:
        return tuple(result.get_value(0, c) for c in range(result.nfields))
    return None


async def _pipeline_results(pgconn: pq.abc.PGconn) -> list[list[pq.abc.PGresult]]:
    """Send what is buffered and collect the results of a pipeline up to its ``Sync``: one list per
    statement (a statement skipped after an error has a ``PIPELINE_ABORTED`` result)."""
    loop = asyncio.get_running_loop()
    fd = pgconn.socket
    while pgconn.flush():
        await _ready(loop, fd, write=True)
    queries: list[list[pq.abc.PGresult]] = []
    current: list[pq.abc.PGresult] = []
    while True:
        pgconn.consume_input()
        while not pgconn.is_busy():
            r = pgconn.get_result()
            if r is None:  # the end of one statement's results
                queries.append(current)
                current = []
            elif r.status == pq.ExecStatus.PIPELINE_SYNC:
                if current:  # an error reported at the Sync itself (the commit failed)
                    queries.append(current)
                return queries
            else:
                current.append(r)
        await _ready(loop, fd, write=False)


async def _cancel(conn: Conn) -> None:
    """Interrupted while the statement runs: have the server cancel it (else it may still commit
    later, and the connection stays busy), as psycopg does; a connection left in doubt is closed."""
    pgconn = conn.pgconn
    if pgconn.transaction_status != pq.TransactionStatus.ACTIVE:
        return
    try:
        await conn.cancel_safe(timeout=5.0)
        await asyncio.wait_for(_results(pgconn), 5.0)
    except BaseException:  # cancelled again, or the server did not answer: the state is unknown
        pgconn.finish()


def _check(results: list[pq.abc.PGresult]) -> pq.abc.PGresult:
    if not results:
        raise errors.InterfaceError("a statement without a result")
    for r in results:
        if r.status not in _OK:
            raise errors.error_from_result(r, encoding="utf-8")
    return results[-1]


async def _results(pgconn: pq.abc.PGconn) -> list[pq.abc.PGresult]:
    """Send what is buffered and collect the results of the query in flight."""
    loop = asyncio.get_running_loop()
    fd = pgconn.socket
    while pgconn.flush():
        await _ready(loop, fd, write=True)
    results: list[pq.abc.PGresult] = []
    while True:
        pgconn.consume_input()
        while not pgconn.is_busy():
            r = pgconn.get_result()
            if r is None:
                return results
            results.append(r)
        await _ready(loop, fd, write=False)


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, *, write: bool) -> None:
    fut: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not fut.done():
            fut.set_result(None)

    if write:
        loop.add_writer(fd, wake)
        try:
            await fut
        finally:
            loop.remove_writer(fd)
    else:
        loop.add_reader(fd, wake)
        try:
            await fut
        finally:
            loop.remove_reader(fd)
