"""Folding SQLite's write-ahead log into the database file on a thread of its own.

In WAL mode every commit appends the changed pages to the log, and a *checkpoint* copies them back
into the database file (then syncs it). SQLite runs one on the committing connection once the log
holds ``wal_autocheckpoint`` pages: on the event loop's thread, in the middle of some run's step
boundary, ~20 ms for 8,000 pages here, which was ~10 µs per step of a stored run (more as the
database grows). So the store also keeps a :class:`WalFolder`: a thread with a connection of its
own that runs a ``PASSIVE`` checkpoint (which never waits for, or blocks, readers and writers)
whenever the store nudges it, every :data:`FOLD_EVERY` commits and at each lease renewal. The
``sqlite3`` module lets go of the GIL while SQLite works, so the copying and syncing happen beside
the loop, on another core when there is one. The committing connection's own checkpoint stays as
the backstop: when it comes, little is left for it to copy, and it lets the log start over from its
beginning (a checkpoint from another connection, while writes go on, cannot).
"""

from __future__ import annotations

import logging
import sqlite3
import threading

__all__ = ["FOLD_EVERY", "WalFolder"]

logger = logging.getLogger("stepwork.storage.sqlite")

FOLD_EVERY = 1000  # commits between two nudges (~2,000-3,000 log pages of stored runs)


class WalFolder:
    """A daemon thread that checkpoints the WAL of one database file when nudged."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.folds = 0  # checkpoints run (for tests and benchmarks)
        self._wake = threading.Event()
        self._stop = False
        self._failed = False
        self._thread = threading.Thread(target=self._loop, name=f"stepwork-wal-{path}", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        """Ask for a checkpoint soon (a nudge while one runs asks for the next)."""
        self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread, after the checkpoint it may be running."""
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            logger.warning('The SQLite log of "%s" is folded on the loop only: %s', self.path, exc)
            return
        try:
            conn.execute("PRAGMA busy_timeout = 0")  # a checkpoint that cannot start now waits for the next nudge
            conn.execute("PRAGMA synchronous = NORMAL")
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stop:
                    return
                self._fold(conn)
        finally:
            conn.close()

    def _fold(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.folds += 1
        except sqlite3.Error as exc:  # e.g. busy with another connection's checkpoint: the next nudge
            if not self._failed:
                self._failed = True
                logger.warning('Folding the SQLite log of "%s" failed (%s); the committing connection '
                               "still does it.", self.path, exc)
