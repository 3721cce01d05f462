"""PostgreSQL store: psycopg 3 (async), one connection per store, autocommit.

The modules, by job: :mod:`.connection` (connecting, reconnecting, errors, migrations),
:mod:`.statements` (the checkpoint statements), :mod:`.checkpoints` (inserts and fenced writes),
:mod:`.leases`, :mod:`.records` (reads and listing), :mod:`.retention`, :mod:`.timers`;
:mod:`.store` puts them together as :class:`PostgresStore`.

It mirrors the SQLite store; what differs is how:

- Every write is **one statement, one round trip**. A checkpoint is a CTE that runs the fenced
  ``UPDATE ... RETURNING version`` and upserts the step rows (and deletes timers) only if that
  update matched; in autocommit mode a single statement is its own transaction, so there is no
  ``BEGIN``/``COMMIT`` round trip. Checkpoint statements are prepared on first use.
- Times are ``TIMESTAMPTZ`` columns; records carry epoch-second floats, converted with
  ``to_timestamp(...)`` on the way in and ``extract(epoch from ...)`` on the way out. The columns
  hold microseconds, so a time read back is the float rounded to the microsecond.
- Text is ordered with ``COLLATE "C"`` (byte order), as SQLite orders it.
"""

from stepwork.storage.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
