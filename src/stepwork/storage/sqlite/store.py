"""The SQLite :class:`~stepwork.storage.base.ExecutionStore`, put together from its parts."""

from __future__ import annotations

from stepwork.storage.sqlite.checkpoints import Checkpoints
from stepwork.storage.sqlite.leases import Leases
from stepwork.storage.sqlite.queue import Queue
from stepwork.storage.sqlite.records import Records
from stepwork.storage.sqlite.retention import Retention
from stepwork.storage.sqlite.timers import Timers
from stepwork.storage.sqlite.workers import Workers

__all__ = ["SQLiteStore"]


class SQLiteStore(Checkpoints, Leases, Queue, Records, Retention, Timers, Workers):
    """An :class:`~stepwork.storage.base.ExecutionStore` on SQLite: a file, or ``":memory:"``.

    ``SQLiteStore(path, *, create_dirs=False, busy_timeout=None)``: see
    :class:`~stepwork.storage.sqlite.connection.SQLiteDatabase`.
    """
