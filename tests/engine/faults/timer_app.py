"""Workflows whose timeout timer is consumed by a process that dies before writing its effect, and
a worker: ``STEPWORK_FAULTS_DIR=DIR python -m tests.engine.faults.timer_app URL WORKFLOW TID``.

Both workflows run ``first`` (compensable), then the async step ``wait`` that nobody completes:

- ``faults-step-timeout``: ``wait`` has ``timeout: 1`` (a durable step-timeout timer);
- ``faults-workflow-timeout``: the workflow has ``timeout: 1`` (a durable transaction-timeout timer).

The worker runs the workflow (the run returns ``invoking``), then stays up: its timer loop fires the
timer one second later, deletes it, times the run out in memory and begins compensation. Its
``on_compensate_begin`` subscriber, reached before anything of that is written, SIGKILLs the
process (the first time only: it leaves DIR/killed). A survivor must still time the run out.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from stepwork import StepContext, WorkflowEngine, create_step, create_workflow
from tests.engine.faults.harness import fault_dir, log_invocation

STEP_TIMEOUT = "faults-step-timeout"
WORKFLOW_TIMEOUT = "faults-workflow-timeout"


def _first(value: Any, ctx: StepContext) -> str:
    log_invocation(ctx)
    return "first-out"


def _wait(value: Any, ctx: StepContext) -> None:
    log_invocation(ctx)  # an async step: it waits for a completion that never comes


first = create_step("first", _first, lambda v, ctx: log_invocation(ctx))
step_timeout = create_workflow(
    {"name": STEP_TIMEOUT, "retention_time": 600},
    lambda inp: create_step({"name": "wait", "async": True, "timeout": 1}, _wait,
                            lambda v, ctx: log_invocation(ctx))(first(inp)))

first2 = create_step("first", _first, lambda v, ctx: log_invocation(ctx))
workflow_timeout = create_workflow(
    {"name": WORKFLOW_TIMEOUT, "retention_time": 600, "timeout": 1},
    lambda inp: create_step({"name": "wait", "async": True}, _wait, lambda v, ctx: log_invocation(ctx))(first2(inp)))

WORKFLOWS = {STEP_TIMEOUT: step_timeout, WORKFLOW_TIMEOUT: workflow_timeout}


def _die_once(event: dict[str, Any]) -> None:
    if event.get("event_type") == "on_compensate_begin" and not (fault_dir() / "killed").exists():
        (fault_dir() / "killed").write_text("1")
        os.kill(os.getpid(), signal.SIGKILL)


async def _main(url: str, workflow: str, transaction_id: str) -> None:
    async with WorkflowEngine(url, lease_ttl=0.5, poll_interval=0.05) as engine:
        await engine.subscribe(workflow, _die_once)
        await engine.run(WORKFLOWS[workflow], {"n": 1}, transaction_id=transaction_id, throw_on_error=False)
        (fault_dir() / "suspended").write_text("1")
        while True:  # the timer loop fires the timeout; the subscriber kills this process
            await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2], sys.argv[3]))
