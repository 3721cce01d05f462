"""SQLite: the write-ahead log is folded into the database file on a thread of the store's
(``stepwork.storage.sqlite.wal``), every ``FOLD_EVERY`` commits and when the engine renews its leases,
so the event loop does not copy and sync it in the middle of a step boundary."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from stepwork.storage.base import StepRow
from stepwork.storage.sqlite import SQLiteStore
from stepwork.storage.sqlite.wal import FOLD_EVERY
from tests.storage.helpers import OWNER, make_row


def _folder_threads(path: Path) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"stepwork-wal-{path}"]


async def _until(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_every_fold_every_commits_the_log_is_folded_beside_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    store = SQLiteStore(str(path))
    await store.open()
    try:
        folder = store._folder
        assert folder is not None and len(_folder_threads(path)) == 1
        size_before = os.path.getsize(path)
        row = make_row()
        await store.insert(row, [StepRow(0, {"id": "a"})])
        for i in range(FOLD_EVERY):  # step boundaries: one fenced statement, one commit each
            await store.write_steps(row.key, OWNER, 1, [StepRow(i, '{"id": "a"}', output=str(i)),
                                                        StepRow(i + 1, '{"id": "b"}')])
        await _until(lambda: folder.folds >= 1)
        # The folded pages (a thousand step rows) are in the database file now, not only in the log.
        assert os.path.getsize(path) > size_before
        folds = folder.folds
        await store.fold_wal()  # what the engine calls at each lease renewal
        await _until(lambda: folder.folds > folds)
    finally:
        await store.close()
    assert store._folder is None and _folder_threads(path) == []
    reopened = SQLiteStore(str(path))
    await reopened.open()
    try:
        assert len(await reopened.steps(row.key)) == FOLD_EVERY + 1
    finally:
        await reopened.close()


async def test_an_in_memory_database_has_no_folding_thread() -> None:
    store = SQLiteStore(":memory:")
    await store.open()
    try:
        assert store._folder is None
        await store.fold_wal()
    finally:
        await store.close()
