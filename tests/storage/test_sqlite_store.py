"""SQLite only: where the database file may be, and waiting out a database another connection keeps
locked (a frozen process holding the write lock must not make the engine throw results away)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from stepwork.errors import StepworkError
from stepwork.storage.base import StepRow
from stepwork.storage.sqlite import SQLiteStore, connection
from tests.storage.helpers import make_row, write

# -- where the file is ------------------------------------------------------------------------------


async def test_a_missing_directory_is_invalid_data_naming_it_and_nothing_is_created(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: `sqlite:///no/such/dir/x.db` silently created `./no/such/dir/`."""
    monkeypatch.chdir(tmp_path)
    store = SQLiteStore("no/such/dir/x.db")
    with pytest.raises(StepworkError) as info:
        await store.open()
    assert info.value.type == "invalid_data"
    message = str(info.value)
    assert f'"{tmp_path / "no/such/dir"}" does not exist' in message
    assert str(tmp_path / "no/such/dir/x.db") in message and "Create it" in message
    assert not (tmp_path / "no").exists()
    with pytest.raises(StepworkError, match="not open"):
        await store.get(make_row().key)


async def test_create_dirs_creates_the_missing_directories(tmp_path: Path) -> None:
    """The engine's default path (`.stepwork/stepwork.db`) is opened with create_dirs=True."""
    path = tmp_path / ".stepwork" / "nested" / "stepwork.db"
    store = SQLiteStore(str(path), create_dirs=True)
    await store.open()
    try:
        await store.insert(make_row(), [])
        assert path.is_file()
    finally:
        await store.close()


async def test_a_parent_that_is_a_file_is_invalid_data(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    for create_dirs in (False, True):
        with pytest.raises(StepworkError, match="is not a directory") as info:
            await SQLiteStore(str(tmp_path / "file" / "x.db"), create_dirs=create_dirs).open()
        assert info.value.type == "invalid_data"


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_a_negative_busy_timeout_is_invalid_data(bad: float) -> None:
    with pytest.raises(StepworkError, match="busy_timeout") as info:
        SQLiteStore(":memory:", busy_timeout=bad)
    assert info.value.type == "invalid_data"


# -- a locked database ------------------------------------------------------------------------------


@contextmanager
def locked(path: Path, seconds: float) -> Iterator[threading.Event]:
    """Another connection (in a thread) holds the write lock of ``path`` for ``seconds``."""
    taken, released = threading.Event(), threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            taken.set()
            time.sleep(seconds)
            conn.execute("COMMIT")
        finally:
            conn.close()
            released.set()
    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(5)
    try:
        yield released
    finally:
        thread.join(10)


@pytest.mark.slow
async def test_a_checkpoint_waits_for_a_locked_database_warning_meanwhile_and_then_succeeds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(connection, "WARN_EVERY", 0.4)
    path = tmp_path / "stepwork.db"
    store = SQLiteStore(str(path))
    await store.open()
    try:
        row = make_row()
        await store.insert(row, [])
        with caplog.at_level(logging.WARNING, logger="stepwork.storage.sqlite"), locked(path, 1.5) as released:
            started = time.monotonic()
            assert await write(store, row, 1, steps=(StepRow(0, {"id": "a"}),)) == 2
            waited = time.monotonic() - started
            assert released.is_set()
        assert waited >= 1.0
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings and all(str(path) in w and "locked" in w for w in warnings)
        assert await store.steps(row.key) == [StepRow(0, {"id": "a"})]
    finally:
        await store.close()


@pytest.mark.slow
async def test_a_busy_timeout_bounds_the_wait_with_a_database_error(tmp_path: Path) -> None:
    path = tmp_path / "stepwork.db"
    store = SQLiteStore(str(path), busy_timeout=0.3)
    await store.open()
    try:
        row = make_row()
        await store.insert(row, [])
        with locked(path, 1.5):
            with pytest.raises(StepworkError) as info:
                await write(store, row, 1)
            assert info.value.type == "database_error"
            assert f'The SQLite database "{path}" stayed locked for 0.' in str(info.value)
            assert "busy_timeout=0.3 s" in str(info.value)
        assert await write(store, row, 1) == 2  # nothing was written, and the store still works
    finally:
        await store.close()
