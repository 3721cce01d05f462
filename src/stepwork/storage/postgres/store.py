"""The PostgreSQL :class:`~stepwork.storage.base.ExecutionStore`, put together from its parts."""

from __future__ import annotations

from stepwork.storage.postgres.checkpoints import Checkpoints
from stepwork.storage.postgres.leases import Leases
from stepwork.storage.postgres.queue import Queue
from stepwork.storage.postgres.records import Records
from stepwork.storage.postgres.retention import Retention
from stepwork.storage.postgres.timers import Timers
from stepwork.storage.postgres.workers import Workers

__all__ = ["PostgresStore"]


class PostgresStore(Checkpoints, Leases, Queue, Records, Retention, Timers, Workers):
    """An :class:`~stepwork.storage.base.ExecutionStore` on PostgreSQL (psycopg 3, async).

    ``PostgresStore(url)``: see :class:`~stepwork.storage.postgres.connection.PostgresDatabase`.
    """
