"""The workflows only some processes have, and a worker that runs one:
``STEPWORK_FAULTS_DIR=DIR python -m tests.engine.faults.ship_app URL WORKFLOW TID``.

- ``faults-ship``: ``pack``, ``label``, ``dispatch``. ``label`` writes DIR/label.invoke.started and
  then waits until DIR/release exists, so the test can SIGKILL the worker mid-step.
- ``faults-ship-retry``: ``charge`` fails its first attempt and is retried after one second (a
  durable retry timer): the run returns ``invoking`` and the worker writes DIR/suspended.

Every invocation is logged to DIR/log. The worker stays up until it is killed.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from stepwork import StepContext, WorkflowEngine, create_step, create_workflow
from tests.engine.faults.harness import fault_dir, log_invocation

SHIP = "faults-ship"
SHIP_RETRY = "faults-ship-retry"


def _plain(name: str) -> Any:
    def invoke(value: Any, ctx: StepContext) -> str:
        log_invocation(ctx)
        return f"{name}-out"
    return create_step(name, invoke, lambda v, ctx: log_invocation(ctx))


async def _label(value: Any, ctx: StepContext) -> str:
    log_invocation(ctx)
    (fault_dir() / "label.invoke.started").write_text("1")
    while not (fault_dir() / "release").exists():
        await asyncio.sleep(0.01)
    return "label-out"


pack, dispatch = _plain("pack"), _plain("dispatch")
label = create_step("label", _label, lambda v, ctx: log_invocation(ctx))
ship = create_workflow({"name": SHIP, "retention_time": 600}, lambda inp: dispatch(label(pack(inp))))


def _charge(value: Any, ctx: StepContext) -> str:
    log_invocation(ctx, f":attempt{ctx.attempt}")
    if ctx.attempt == 1:
        raise RuntimeError("the first attempt fails")
    return "charged"


charge = create_step({"name": "charge", "max_retries": 1, "retry_interval": 1}, _charge)
ship_retry = create_workflow({"name": SHIP_RETRY, "retention_time": 600}, lambda inp: charge(inp))

WORKFLOWS = {SHIP: ship, SHIP_RETRY: ship_retry}


async def _main(url: str, workflow: str, transaction_id: str) -> None:
    async with WorkflowEngine(url, lease_ttl=0.5, poll_interval=0.05) as engine:
        await engine.run(WORKFLOWS[workflow], {"n": 1}, transaction_id=transaction_id, throw_on_error=False)
        (fault_dir() / "suspended").write_text("1")
        while True:
            await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2], sys.argv[3]))
