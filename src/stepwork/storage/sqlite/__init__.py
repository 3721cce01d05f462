"""SQLite store: the default (a file at ``./.stepwork/stepwork.db``), or ``:memory:``.

The modules, by job: :mod:`.connection` (opening the file, waiting out a busy database,
transactions, migrations), :mod:`.checkpoints` (inserts and fenced checkpoint writes),
:mod:`.leases`, :mod:`.reads` (reads and listing), :mod:`.retention` (deleting what is finished),
:mod:`.timers`; :mod:`.store` puts them together as :class:`SQLiteStore`.
"""

from stepwork.storage.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
