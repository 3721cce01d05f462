"""Finding 3: an engine that lacks a workflow must not capture that workflow's executions or timers.

Two kinds of process share one database: ``other_app`` (which has none of ``ship_app``'s
workflows) and processes that have them (a ``ship_app`` worker, and this test process). When a
``faults-ship`` execution's owner dies, or a retry timer comes due with nobody driving its run, the
``other_app`` process must leave it alone, so that an engine that knows the workflow finishes it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stepwork import WorkflowEngine
from tests.engine.faults import ship_app
from tests.engine.faults.harness import Workers, log_lines, wait_for_end, wait_for_file

pytestmark = pytest.mark.slow

# How long the other kind of process alone has the database after the owner died: the owner's lease
# (0.5 s) and the retry timer (due 1 s after the first attempt) run out meanwhile, and the other
# process's recovery and timer loops (every 50 ms) come round many times.
ALONE = 2.5


async def _start_other(workers: Workers, url: str, directory: Path) -> None:
    workers.start("tests.engine.faults.other_app", url)
    await wait_for_file(directory / "other.ready")


def _lines(directory: Path, tid: str) -> list[str]:
    return [line for line in log_lines(directory) if f":{tid}:" in line]


async def test_an_orphan_is_left_to_the_engines_that_have_its_workflow(
        workers: Workers, shared_database_url: str, fault_dir_path: Path) -> None:
    """The owner of a ``faults-ship`` execution is SIGKILLed mid-step; an ``other_app`` process is
    the only engine alive for a while; then an engine that knows ``faults-ship`` must finish it."""
    url = shared_database_url
    tid = f"ship-{fault_dir_path.parent.name}"
    await _start_other(workers, url, fault_dir_path)
    owner = workers.start("tests.engine.faults.ship_app", url, ship_app.SHIP, tid)
    await wait_for_file(fault_dir_path / "label.invoke.started")
    workers.kill(owner)
    (fault_dir_path / "release").write_text("1")
    await asyncio.sleep(ALONE)
    async with WorkflowEngine(url, lease_ttl=0.5, poll_interval=0.05) as knows_ship:
        states = await wait_for_end(knows_ship, ship_app.SHIP, tid, timeout=5)
    assert states == ["done"], f"the orphan was not recovered: {states}"
    assert [line.split(":")[0] for line in _lines(fault_dir_path, tid)] == ["pack", "label", "label", "dispatch"]


async def test_a_due_timer_is_left_to_the_engines_that_have_its_workflow(
        workers: Workers, shared_database_url: str, fault_dir_path: Path) -> None:
    """A ``faults-ship-retry`` run waits on its retry timer and its process is SIGKILLed; the timer
    comes due while only the ``other_app`` process is alive; then an engine that knows the workflow
    must fire it and finish the run."""
    url = shared_database_url
    tid = f"ship-retry-{fault_dir_path.parent.name}"
    await _start_other(workers, url, fault_dir_path)
    owner = workers.start("tests.engine.faults.ship_app", url, ship_app.SHIP_RETRY, tid)
    await wait_for_file(fault_dir_path / "suspended")
    workers.kill(owner)
    await asyncio.sleep(ALONE)
    async with WorkflowEngine(url, lease_ttl=0.5, poll_interval=0.05) as knows_ship:
        states = await wait_for_end(knows_ship, ship_app.SHIP_RETRY, tid, timeout=5)
    assert states == ["done"], f"the retry never fired: {states}"
    assert [line.rsplit(":", 1)[1] for line in _lines(fault_dir_path, tid)] == ["attempt1", "attempt2"]
