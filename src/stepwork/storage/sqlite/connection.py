"""The SQLite connection: opening the file, waiting out a busy database, transactions, migrations.

Uses the standard ``sqlite3`` module directly on the event loop thread: a checkpoint commit in WAL
mode with ``synchronous=NORMAL`` costs microseconds, while a thread hop per call (what aiosqlite
does) costs ~100 µs. Writes take the write lock up front (``BEGIN IMMEDIATE``).

A database that is only busy (another connection holds its write lock) is waited for, yielding to
the loop between attempts, by default without bound: giving up would make the engine drop step
results it holds, while the lock holder (a process stopped in a debugger, say) may well go on. A
warning names the file every ``WARN_EVERY`` seconds meanwhile; ``busy_timeout`` sets a bound.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from stepwork.errors import StepworkError
from stepwork.storage import migrations
from stepwork.storage.search import PENDING_TABLE, sqlite_flush_search
from stepwork.storage.sqlite.wal import FOLD_EVERY, WalFolder

__all__ = ["WARN_EVERY", "SQLiteDatabase"]

T = TypeVar("T")
logger = logging.getLogger("stepwork.storage.sqlite")

_STALL = 1.0  # seconds of waiting for the write lock that count as a stall of every process
WARN_EVERY = 10.0  # seconds between the warnings while a busy database is waited for
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
# How long sqlite3 itself waits for the lock before returning "busy": short, as it blocks the loop.
_LOCK_WAIT_MS = 50
_MMAP_BYTES = 256 << 20
# Inserts between two moves of the pending rows into q's FTS table (schema version 9, see
# stepwork.storage.search): ~40 µs an execution in batches of this size (~10 ms a move), against ~150
# µs for one execution a transaction.
SEARCH_BATCH = 256
_SEARCH_CHUNK = 512  # pending rows indexed in one transaction at most (~20 ms)
_PENDING_UPTO, _INDEX_PENDING, _UNPEND = sqlite_flush_search(_SEARCH_CHUNK)
_ANY_PENDING = f"SELECT 1 FROM {PENDING_TABLE} LIMIT 1"


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY  # primary code of an extended one (SQLITE_BUSY_SNAPSHOT, …)
    message = str(exc)
    return "locked" in message or "busy" in message


def _db_error(exc: BaseException) -> StepworkError:
    return StepworkError(StepworkError.Types.DB_ERROR, f"SQLite error: {exc}")


class SQLiteDatabase:
    """One ``sqlite3`` connection to a database file (or ``":memory:"``), and how it is used."""

    dialect = "sqlite"
    # Whether q's search tables exist (version 9's pending table; read at open), and the inserts of
    # this store since it last moved the pending rows into the FTS table.
    _search = False
    _unindexed = 0
    # The thread that folds the WAL (a file's; see stepwork.storage.sqlite.wal), and the commits
    # since it was last nudged.
    _folder: WalFolder | None = None
    _commits = 0

    def __init__(self, path: str, *, create_dirs: bool = False, busy_timeout: float | None = None) -> None:
        """``path``: the database file, or ``":memory:"``. ``create_dirs``: create its missing
        parent directories on open (else a missing directory is an ``invalid_data`` error, so a
        mistyped path does not silently create a tree). ``busy_timeout``: seconds to wait for a
        database another connection keeps locked before raising ``database_error`` (``None``: wait
        as long as it takes)."""
        if busy_timeout is not None and not busy_timeout >= 0:
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f"busy_timeout must be a number of seconds >= 0 or None, got {busy_timeout!r}.")
        self.path = path
        self.create_dirs = create_dirs
        self.busy_timeout = busy_timeout
        # When a long wait for the write lock last ended (time.monotonic()), or None: every process
        # on the file was held up, so nobody could renew its leases meanwhile (see stalled_since).
        self.stall_ended: float | None = None
        self._conn: sqlite3.Connection | None = None
        self._where = os.path.abspath(path)  # the file, for messages (set again on open)

    @property
    def conn(self) -> sqlite3.Connection:
        """The open connection (``database_error`` before :meth:`open`)."""
        if self._conn is None:
            raise StepworkError(StepworkError.Types.DB_ERROR, "The SQLite store is not open; start the engine first.")
        return self._conn

    @property
    def _in_memory(self) -> bool:
        return self.path in (":memory:", "")

    async def open(self) -> None:
        """Connect, set the journal up and apply pending migrations (a no-op when open)."""
        if self._conn is not None:
            return
        if not self._in_memory:
            self._check_directory()
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StepworkError(StepworkError.Types.DB_ERROR,
                                f'Cannot open the SQLite database "{self._where}": {exc}') from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {_LOCK_WAIT_MS}")
            if not self._in_memory:
                await self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            conn.execute("PRAGMA synchronous = NORMAL")
            # Fold the WAL back into the database less often than every 1,000 pages (each fold
            # costs ~15% of checkpoint throughput); the engine's timer loop also folds it when idle.
            conn.execute("PRAGMA wal_autocheckpoint = 8000")
            # Pages read through a memory map instead of a read() each (measured ~2 µs less per
            # checkpoint); the map only grows the address space, not memory in use.
            conn.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
            self._conn = conn
            await self._migrate()
            self._search = conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?",
                                        (PENDING_TABLE,)).fetchone() is not None
            if not self._in_memory:
                self._folder = WalFolder(self._where)
        except BaseException:
            self._conn = None
            conn.close()
            raise

    async def close(self) -> None:
        """Close the connection (and stop the thread that folds its log)."""
        if self._folder is not None:
            self._folder.close()
            self._folder = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _check_directory(self) -> None:
        # Blocking file-system calls, once at start (a relative path is relative to the directory then).
        self._where = os.path.abspath(self.path)
        directory = os.path.dirname(self._where)
        if os.path.isdir(directory):
            return
        where = f'The SQLite database "{self._where}" cannot be opened'
        if os.path.exists(directory):
            raise StepworkError(StepworkError.Types.INVALID_DATA, f'{where}: "{directory}" is not a directory.')
        if not self.create_dirs:
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f'{where}: its directory "{directory}" does not exist. Create it first '
                                f'(mkdir -p "{directory}"), or check the path in the database URL.')
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise StepworkError(StepworkError.Types.DB_ERROR,
                                f'{where}: its directory "{directory}" cannot be created: {exc}') from None

    # -- running statements -----------------------------------------------------------------------

    async def _retry(self, fn: Callable[[], T]) -> T:
        """``fn()``, attempted again while the database is busy; other errors become ``database_error``."""
        try:
            return fn()  # the common case: no clock read, no loop
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise _db_error(exc) from exc
        except (sqlite3.DatabaseError, UnicodeError) as exc:
            raise _db_error(exc) from exc
        return await self._wait_busy(fn)

    def stalled_since(self, seconds: float) -> bool:
        """True if this store waited long for the write lock within the last ``seconds``."""
        return self.stall_ended is not None and time.monotonic() - self.stall_ended < seconds

    async def _wait_busy(self, fn: Callable[[], T]) -> T:
        started = time.monotonic()
        try:
            return await self._wait_busy_from(fn, started)
        finally:
            if time.monotonic() - started >= _STALL:
                self.stall_ended = time.monotonic()

    async def _wait_busy_from(self, fn: Callable[[], T], started: float) -> T:
        warn_at = started + WARN_EVERY
        delay = 0.001
        while True:
            # Each attempt blocks the loop for up to _LOCK_WAIT_MS: once the wait is long, attempt
            # less often, so other tasks keep most of the loop (a release is seen within 0.25 s).
            await asyncio.sleep(delay)
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise _db_error(exc) from exc
                error = exc
            except (sqlite3.DatabaseError, UnicodeError) as exc:
                raise _db_error(exc) from exc
            now = time.monotonic()
            waited = now - started
            if self.busy_timeout is not None and waited >= self.busy_timeout:
                raise StepworkError(
                    StepworkError.Types.DB_ERROR,
                    f'The SQLite database "{self._where}" stayed locked for {waited:.1f} s '
                    f"(busy_timeout={self.busy_timeout:g} s): another connection holds its write lock "
                    f"({error}).") from error
            if now >= warn_at:
                warn_at = now + WARN_EVERY
                logger.warning('The SQLite database "%s" has been locked for %.0f s by another connection '
                               "(a stopped or slow process?); still waiting for it.",
                               self._where, waited)
            delay = min(delay * 2, 0.05 if waited < 1.0 else 0.25)

    async def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(conn)`` in one write transaction (retried whole while the database is busy)."""
        conn = self.conn

        def run() -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT (busy, in rollback-journal mode), which leaves the
                # transaction open: the retry starts it again from BEGIN.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result
        result = await self._retry(run)
        self.committed()
        return result

    def committed(self) -> None:
        """Count a commit; every ``FOLD_EVERY`` of them the log is folded beside the loop."""
        self._commits += 1
        if self._commits >= FOLD_EVERY:
            self.fold_soon()

    def fold_soon(self) -> None:
        """Have the write-ahead log folded into the database file beside the loop, now (a no-op
        without a log: an in-memory database)."""
        self._commits = 0
        if self._folder is not None:
            self._folder.nudge()

    def _index_pending(self, conn: sqlite3.Connection) -> bool:
        """Move up to ``_SEARCH_CHUNK`` pending rows into q's FTS table, in the caller's transaction;
        whether more are pending."""
        self._unindexed = 0
        upto = conn.execute(_PENDING_UPTO).fetchone()[0]
        if upto is None:
            return False
        conn.execute(_INDEX_PENDING, (upto,))
        conn.execute(_UNPEND, (upto,))
        return conn.execute(_ANY_PENDING).fetchone() is not None

    async def flush_search(self, chunks: int | None = None) -> None:
        """Index the rows q's FTS table does not hold yet (nothing to do if none is pending), a chunk a
        transaction, letting the loop run between chunks: all of them, or at most ``chunks``."""
        if not self._search:
            return
        conn = self.conn
        if await self._retry(lambda: conn.execute(_ANY_PENDING).fetchone()) is None:
            return
        done = 0
        while True:
            done += 1
            if not await self._tx(self._index_pending) or (chunks is not None and done >= chunks):
                return
            await asyncio.sleep(0)  # (the next chunk in a later turn of the loop)

    async def _migrate(self) -> None:
        def apply(conn: sqlite3.Connection) -> None:
            known = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                 "AND name = 'stepwork_migrations'").fetchone()
            applied = {r[0] for r in conn.execute("SELECT version FROM stepwork_migrations")} if known else set()
            for version, statements in migrations.pending("sqlite", applied):
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO stepwork_migrations (version, applied_at) VALUES (?, ?)",
                             (version, time.time()))
        await self._tx(apply)
