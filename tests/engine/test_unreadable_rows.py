"""Executions whose stored row cannot be read (corrupt JSON in ``context`` or ``progress``) are failed,
once, by the first engine that tries to recover them, instead of being tried again at every poll: so
more of them than one poll takes (100 orphans) cannot keep recovery from a good orphan for ever. And
what a listing makes of them afterwards."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from stepwork import WorkflowEngine, create_step, create_workflow
from stepwork.engine.recovery import unreadable
from stepwork.errors import StepworkError

pytestmark = pytest.mark.timeout(60)

POISONED = 110  # more than the 100 orphans one recovery poll takes


def orphan(db: Path, tids: list[str], *, column: str | None, text: str = "", expired_ago: float) -> None:
    """Make the queued runs ``tids`` orphans (a claimer that died), with ``column`` set to ``text``."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            for tid in tids:
                corrupt = f", {column} = ?" if column else ""
                cur = conn.execute(
                    f"UPDATE workflow_execution SET queued_at = NULL, lease_owner = 'gone-host:1:01GONE', "
                    f"lease_expires_at = ?{corrupt} WHERE transaction_id = ?",
                    (time.time() - expired_ago, *([text] if column else []), tid))
                assert cur.rowcount == 1, tid
    finally:
        conn.close()


def states(db: Path) -> dict[str, str]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT transaction_id, state FROM workflow_execution").fetchall())
    finally:
        conn.close()


async def test_poisoned_orphans_are_failed_once_and_do_not_starve_the_recovery_of_a_good_one(
        tmp_path: Path, wf_name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "stepwork")
    db = tmp_path / "stepwork.db"
    url = f"sqlite:///{db}"
    wf = create_workflow({"name": wf_name, "retention_time": 600},
                         lambda inp: create_step("one", lambda v: {"n": v["n"] + 1})(inp))
    bad = [f"bad-{i:03}" for i in range(POISONED)]
    async with WorkflowEngine(url, concurrency=0) as producer:
        for tid in [*bad, "good"]:
            await producer.run(wf, {"n": 1}, transaction_id=tid, queue=True)
    # The poisoned rows have been orphans the longest: an orphan query by lease expiry meets them first.
    orphan(db, bad[::2], column="context", text="{not json", expired_ago=3600)
    orphan(db, bad[1::2], column="progress", text="[1, 2", expired_ago=3600)
    orphan(db, ["good"], column=None, expired_ago=60)

    async with WorkflowEngine(url, concurrency=0, poll_interval=0.05, lease_ttl=1.0) as engine:
        deadline = time.monotonic() + 10
        while states(db)["good"] != "done":
            assert time.monotonic() < deadline, f"the good orphan was never recovered: {states(db)['good']}"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # more recovery polls: a failed row is not taken up again
        # A listing without records does not read the corrupt context (the progress it reads).
        listed, count = await engine.list_and_count_workflow_executions(
            {"transaction_id": bad[::2]}, records=False)
    assert count == len(bad[::2]) and {e.state for e in listed} == {"failed"}

    seen = states(db)
    assert seen["good"] == "done"
    assert {tid: seen[tid] for tid in bad} == dict.fromkeys(bad, "failed")
    reports = [r for r in caplog.records if "cannot be read from the database" in r.getMessage()]
    assert sorted(r.transaction_id for r in reports) == bad, "each poisoned row is reported once"  # type: ignore[attr-defined]
    first = next(r for r in reports if r.transaction_id == bad[0])  # type: ignore[attr-defined]
    assert first.levelno == logging.ERROR
    assert wf_name in first.getMessage() and "JSONDecodeError" in first.getMessage()
    assert "delete it" in first.getMessage()
    assert not [r for r in caplog.records if "Recovery of" in r.getMessage()], "no retry-later failures"


def test_only_content_errors_mean_a_row_is_unreadable() -> None:
    """A database error is transient (tried again); an unknown workflow, a definition this process
    lacks, a row that went: left to others; a document that is not JSON: unreadable."""
    for transient in (StepworkError.Types.DB_ERROR, StepworkError.Types.NOT_FOUND, StepworkError.Types.CONFLICT,
                      StepworkError.Types.INVALID_DATA):
        assert not unreadable(StepworkError(transient, "x"))
    assert not unreadable(OSError("connection reset"))
    assert not unreadable(asyncio.CancelledError())
    try:
        json.loads("{not json")
    except ValueError as exc:
        assert unreadable(exc)
    assert unreadable(RecursionError("maximum recursion depth exceeded while decoding a JSON array"))
    # A field missing, a state or record this version does not know: maybe a newer version's row (left
    # alone, logged at each try, never failed).
    assert not unreadable(KeyError("invoke")) and not unreadable(AttributeError("'list' has no attribute 'get'"))
    assert not unreadable(TypeError("int() argument must be a string"))
    assert not unreadable(ValueError("'bogus' is not a valid TransactionState"))


async def _one_bad_row(tmp_path: Path, wf_name: str, column: str, text: str) -> str:
    db = tmp_path / "listing.db"
    wf = create_workflow({"name": wf_name, "retention_time": 600},
                         lambda inp: create_step("one", lambda v: v)(inp))
    async with WorkflowEngine(f"sqlite:///{db}") as engine:
        for tid in ("fine-1", "bad", "fine-2"):
            await engine.run(wf, {"n": 1}, transaction_id=tid)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(f"UPDATE workflow_execution SET {column} = ? WHERE transaction_id = 'bad'", (text,))
    conn.close()
    return f"sqlite:///{db}"


@pytest.mark.parametrize(("column", "records"), [("context", True), ("execution", True), ("progress", False),
                                                ("progress", True)])
async def test_one_corrupt_row_does_not_break_a_listing(tmp_path: Path, wf_name: str, column: str,
                                                        records: bool) -> None:
    url = await _one_bad_row(tmp_path, wf_name, column, "{not json")
    async with WorkflowEngine(url) as engine:
        listed, count = await engine.list_and_count_workflow_executions({"workflow_id": wf_name}, records=records)
        bad = next(e for e in listed if e.transaction_id == "bad")
        with pytest.raises(ValueError):  # (read on its own, it still says what is wrong)
            await engine.retrieve_workflow_execution(bad.id)
    assert count == 3 and {e.transaction_id for e in listed} == {"fine-1", "bad", "fine-2"}
    by_tid = {e.transaction_id: e for e in listed}
    if records:
        assert by_tid["fine-1"].context is not None and by_tid["fine-1"].execution is not None


async def test_an_unreadable_execution_waiting_for_a_timer_is_failed_when_the_timer_fires(
        tmp_path: Path, wf_name: str, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "timer.db"
    url = f"sqlite:///{db}"
    attempts: list[int] = []

    def flaky(value: dict[str, int], ctx: object) -> dict[str, int]:
        attempts.append(1)
        raise ConnectionError("try again")
    step = create_step({"name": "flaky", "max_retries": 3, "retry_interval": 0.3}, flaky)
    wf = create_workflow({"name": wf_name, "retention_time": 600}, lambda inp: step(inp))
    async with WorkflowEngine(url, poll_interval=30) as engine:  # (its loop does not fire the retry)
        result = await engine.run(wf, {"n": 1}, transaction_id="waits", throw_on_error=False)
        assert str(result.transaction.state) == "invoking"  # waiting for the retry's timer
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE workflow_execution SET progress = '[1, 2' WHERE transaction_id = 'waits'")
    conn.close()
    caplog.set_level(logging.INFO, "stepwork")
    async with WorkflowEngine(url, poll_interval=0.05) as engine:
        deadline = time.monotonic() + 10
        while states(db)["waits"] != "failed":
            assert time.monotonic() < deadline, states(db)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # more polls: nothing fires again
    conn = sqlite3.connect(db)
    timers = conn.execute("SELECT count(*) FROM workflow_timer WHERE transaction_id = 'waits'").fetchone()[0]
    conn.close()
    assert timers == 0 and len(attempts) == 1
    reports = [r for r in caplog.records if "cannot be read from the database" in r.getMessage()]
    assert len(reports) == 1
    assert not [r for r in caplog.records if "fires again" in r.getMessage()]
