"""Finding 2: a timer consumed by a process that then dies must not be lost.

A worker runs a workflow whose async step waits with a one-second timeout (or whose whole run has
one). The worker's own timer loop fires the due timer, deletes it, applies the timeout in memory and
begins compensation, and is SIGKILLed (by its own ``on_compensate_begin`` subscriber, see
``timer_app``) before it has written any of that. A survivor started afterwards must still time the
run out and compensate it.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from stepwork import WorkflowEngine
from tests.engine.faults import timer_app
from tests.engine.faults.harness import Workers, log_lines, wait_for_end

pytestmark = pytest.mark.slow


async def _timeout_survives_its_consumer(workers: Workers, url: str, workflow: str, directory: Path) -> None:
    tid = f"timer-{directory.parent.name}"  # the test's own (the PostgreSQL database is shared)
    proc = workers.start("tests.engine.faults.timer_app", url, workflow, tid)
    assert await workers.wait_exit(proc, 20) == -signal.SIGKILL
    assert (directory / "killed").exists(), "the worker died elsewhere than right after consuming the timer"
    async with WorkflowEngine(url, lease_ttl=0.5, poll_interval=0.05) as survivor:
        states = await wait_for_end(survivor, workflow, tid, timeout=5)
    assert states and states[-1] in ("reverted", "failed"), f"the timeout was lost: {states}"
    lines = [line for line in log_lines(directory) if f":{tid}:" in line]
    assert [line.split(":")[0] for line in lines if ":invoke:" in line] == ["first", "wait"]
    assert [line.split(":")[0] for line in lines if line.startswith("first:compensate:")] == ["first"]


async def test_a_step_timeout_consumed_by_a_killed_process_still_times_the_step_out(
        workers: Workers, shared_database_url: str, fault_dir_path: Path) -> None:
    await _timeout_survives_its_consumer(workers, shared_database_url, timer_app.STEP_TIMEOUT, fault_dir_path)


async def test_a_workflow_timeout_consumed_by_a_killed_process_still_times_the_run_out(
        workers: Workers, shared_database_url: str, fault_dir_path: Path) -> None:
    await _timeout_survives_its_consumer(workers, shared_database_url, timer_app.WORKFLOW_TIMEOUT, fault_dir_path)
