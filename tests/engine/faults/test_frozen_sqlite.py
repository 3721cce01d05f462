"""Finding 6: a process frozen while it holds a shared SQLite file's write lock.

Three processes share one SQLite file: two engines (four runs each, every run inside step ``b``)
and a third process that takes the write lock and is frozen (SIGSTOP) for 34 s. A database that is
only busy must be waited for: once the frozen process continues, every run completes, and no step
or compensation runs twice (its lease ran out meanwhile, but nobody could write to take it over).

The SQLite store the finding was made on gave up on "database is locked" after a fixed 30 s
(``storage/sqlite.py``, ``_LOCK_DEADLINE``), so the freeze, and this test, last longer than that.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from tests.engine.faults.harness import Workers, duplicates, log_lines, wait_for_file

FREEZE = 34.0  # seconds: past that 30 s bound, and past the engines' 30 s lease
RUNS = 4  # per engine; odd inputs fail in step c and are compensated


@pytest.mark.slow
@pytest.mark.timeout(120)

async def test_runs_wait_out_a_process_frozen_while_it_holds_the_sqlite_write_lock(
        workers: Workers, tmp_path: Path, fault_dir_path: Path) -> None:
    path = tmp_path / "frozen.db"
    url = f"sqlite:///{path}"
    engines = [workers.start("tests.engine.faults.sqlite_app", "run", url, w, str(RUNS)) for w in ("1", "2")]
    for w in ("1", "2"):
        await wait_for_file(fault_dir_path / f"ready-{w}")
    (fault_dir_path / "go").write_text("1")

    async def every_run_in_b() -> None:
        while sum(1 for line in log_lines(fault_dir_path) if line.startswith("b:invoke:")) < 2 * RUNS:
            await asyncio.sleep(0.02)
    await asyncio.wait_for(every_run_in_b(), 20)

    locker = workers.start("tests.engine.faults.sqlite_app", "lock", str(path))
    await wait_for_file(fault_dir_path / "locked")
    frozen_at = time.monotonic()
    while not workers.is_stopped(locker):  # it stops itself once it holds the lock
        assert locker.poll() is None and time.monotonic() - frozen_at < 5, "the locker did not stop"
        await asyncio.sleep(0.01)
    await asyncio.sleep(FREEZE - (time.monotonic() - frozen_at))
    workers.thaw(locker)
    assert await workers.wait_exit(locker, 10) == 0

    for w in ("1", "2"):
        await wait_for_file(fault_dir_path / f"result-{w}.json", timeout=30)
    await asyncio.sleep(2)  # what either engine recovers meanwhile would show in the log
    (fault_dir_path / "stop").write_text("1")
    for proc in engines:
        assert await workers.wait_exit(proc, 10) == 0

    results = [json.loads((fault_dir_path / f"result-{w}.json").read_text()) for w in ("1", "2")]
    errors = [e for r in results for e in r["errors"]]
    lines = log_lines(fault_dir_path)
    twice = duplicates(lines)
    assert errors == [], (f"{len(errors)} of {2 * RUNS} runs failed: {errors[:1]}; {len(twice)} invocations ran "
                          f"twice: {twice[:2]}")
    assert sorted(s for r in results for s in r["states"]) == sorted(["done", "reverted"] * RUNS)
    assert twice == [], "invoked twice with the same key"
    assert len([line for line in lines if ":invoke:" in line]) == 2 * RUNS * 3

