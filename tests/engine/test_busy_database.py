"""A database that is only busy: waited for (SQLite), and when a configured bound runs out the error
says that the stored execution continues, naming it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from stepwork import StepworkError, create_step, create_workflow
from stepwork.engine.engine import WorkflowEngine


def _hold_write_lock(path: Path, seconds: float, held: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    held.set()
    threading.Event().wait(seconds)
    conn.execute("ROLLBACK")
    conn.close()


async def _run_while_locked(url: str, path: Path, wf_name: str, hold: float) -> tuple[Any, list[str]]:
    calls: list[str] = []
    held = threading.Event()
    holder: list[threading.Thread] = []

    def first(value: Any) -> str:
        calls.append("first")
        if not holder:  # the first call takes the lock away from the engine for a while
            holder.append(threading.Thread(target=_hold_write_lock, args=(path, hold, held)))
            holder[0].start()
            held.wait(5)
        return "one"

    s1 = create_step("first", first)
    s2 = create_step("second", lambda v: calls.append("second") or "two")
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s2(s1(inp)))
    async with WorkflowEngine(url, poll_interval=60, lease_ttl=1) as engine:
        try:
            outcome: Any = await engine.run(wf, 1, transaction_id="tx-busy")
        except StepworkError as exc:
            outcome = exc
        holder[0].join()
        return outcome, calls


async def test_a_busy_sqlite_database_is_waited_for(tmp_path: Path, wf_name: str) -> None:
    path = tmp_path / "busy.db"
    result, calls = await _run_while_locked(f"sqlite:///{path}", path, wf_name, hold=1.0)
    assert not isinstance(result, Exception), result
    assert result.transaction.state == "done"
    assert calls == ["first", "second"]  # nothing ran twice, nothing was thrown away


async def test_a_bounded_wait_says_the_execution_continues(tmp_path: Path, wf_name: str) -> None:
    path = tmp_path / "busy.db"
    error, calls = await _run_while_locked(f"sqlite:///{path}?busy_timeout=0.3", path, wf_name, hold=1.5)
    assert isinstance(error, StepworkError), error
    assert error.type == "database_error"
    assert "tx-busy" in str(error) and "continues" in str(error)
    # It does continue: once the lease runs out, an engine takes it over and finishes it.
    async with WorkflowEngine(f"sqlite:///{path}", poll_interval=60, lease_ttl=0.2) as engine:
        await asyncio.sleep(0.05)
        deadline = asyncio.get_running_loop().time() + 40
        state = None
        while asyncio.get_running_loop().time() < deadline:
            await engine.fire_due()
            [row] = await engine.list_workflow_executions({"workflow_id": wf_name})
            state = row.state
            if state == "done":
                break
            await asyncio.sleep(0.1)
    assert state == "done"


def test_a_sqlite_url_with_an_unknown_option_is_refused() -> None:
    with pytest.raises(StepworkError) as err:
        WorkflowEngine("sqlite:///x.db?timeout=3")
    assert err.value.type == "invalid_data" and "busy_timeout" in str(err.value)
