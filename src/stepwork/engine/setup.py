"""What an engine is made with: its clock, the store a database URL names, checked settings."""

from __future__ import annotations

import math
import os
import time
from typing import Protocol

from stepwork.errors import StepworkError
from stepwork.storage.base import ExecutionStore
from stepwork.storage.sqlite import SQLiteStore

__all__ = ["DEFAULT_SQLITE_PATH", "Clock", "SystemClock", "open_store", "positive"]

_INVALID = StepworkError.Types.INVALID_DATA
DEFAULT_SQLITE_PATH = os.path.join(".stepwork", "stepwork.db")


class Clock(Protocol):
    """Where the engine reads time (a fake clock in tests)."""

    def time(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        """``time.time()``."""
        return time.time()


def open_store(database_url: str | None) -> ExecutionStore:
    """The store for a database URL: ``None`` (SQLite file ``./.stepwork/stepwork.db``),
    ``"sqlite://"`` (in memory), ``"sqlite:///path.db"``, ``"postgresql://user@host/db"``."""
    if database_url is None:
        return SQLiteStore(DEFAULT_SQLITE_PATH, create_dirs=True)
    if not isinstance(database_url, str):
        raise StepworkError(_INVALID, f"database_url must be a string, got {database_url!r}.")
    if database_url in ("sqlite://", "sqlite:///:memory:", "memory://"):
        return SQLiteStore(":memory:")
    if database_url.startswith("sqlite:///"):
        path, _, query = database_url[len("sqlite:///"):].partition("?")
        return SQLiteStore(path, busy_timeout=_busy_timeout(database_url, query))
    if database_url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        # Imported when used: psycopg takes a while to load, and SQLite users never need it.
        from stepwork.storage.postgres import PostgresStore

        store: ExecutionStore = PostgresStore(database_url)
        return store
    raise StepworkError(_INVALID, f'Unsupported database_url "{database_url}". Use "sqlite:///path.db", '
                                  '"sqlite://" (in memory) or "postgresql://user@host/db".')


def _busy_timeout(database_url: str, query: str) -> float | None:
    """``?busy_timeout=SECONDS`` of a SQLite URL: how long a locked database is waited for (default:
    as long as it takes)."""
    if not query:
        return None
    options = dict(part.partition("=")[::2] for part in query.split("&"))
    unknown = set(options) - {"busy_timeout"}
    if unknown:
        raise StepworkError(_INVALID, f'Unknown option {", ".join(sorted(unknown))} in "{database_url}"; a SQLite '
                                      "URL takes busy_timeout=SECONDS.")
    try:
        return positive("busy_timeout", float(options["busy_timeout"]))
    except ValueError:
        raise StepworkError(_INVALID, f'busy_timeout must be a number of seconds in "{database_url}".') from None


def positive(name: str, value: float) -> float:
    """``value`` as a float, if it is a positive finite number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise StepworkError(_INVALID, f"{name} must be a positive number of seconds, got {value!r}.")
    return float(value)
