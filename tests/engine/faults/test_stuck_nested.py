"""A stuck execution (the case of Medusa's ``race.spec.ts``): a nested workflow run as a background
async step that is re-invoked while it waits (``retry_interval_awaiting``), whose child fails after
a second.

The child's failure fails the parent's step, so the parent compensates. The awaiting
re-invocations must stop once compensation begins (a late one must not complete the step as if it
were still invoking), and the parent must end ``reverted`` (or ``failed``) promptly, its first step
compensated once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from stepwork import StepContext, WorkflowEngine, create_step, create_workflow
from tests.engine.faults.harness import FINISHED, states_of


@pytest.mark.slow
async def test_a_failing_nested_background_step_with_awaiting_retries_is_compensated_promptly(
        own_database_url: str, wf_name: str, caplog: pytest.LogCaptureFixture) -> None:
    compensated: list[str] = []

    async def inner(value: Any, ctx: StepContext) -> None:
        await asyncio.sleep(1)
        raise RuntimeError("the nested step fails after a second")

    child = create_workflow({"name": f"{wf_name}-child"}, lambda inp: create_step("inner", inner)(inp))
    first = create_step("first", lambda v: "first-out", lambda v, ctx: compensated.append(ctx.step_name))

    def parent(inp: Any) -> Any:
        out = first(inp)
        return child.run_as_step(out).config(name="nested", **{
            "async": True, "compensate_async": True, "background_execution": True,
            "retry_interval_awaiting": 0.1, "max_awaiting_retries": 3})

    wf = create_workflow({"name": wf_name, "retention_time": 600}, parent)
    tid = "stuck-nested"
    caplog.set_level(logging.WARNING, logger="stepwork")
    async with WorkflowEngine(own_database_url, lease_ttl=5, poll_interval=0.05) as engine:
        started = time.monotonic()
        await engine.run(wf, {"n": 1}, transaction_id=tid, throw_on_error=False)
        states: list[str] = []
        while time.monotonic() - started < 1 + 5:  # the child fails after 1 s; 5 s to compensate
            states = await states_of(engine, wf_name, tid)
            if states and states[-1] in FINISHED:
                break
            await asyncio.sleep(0.05)
    wrong_action = [r.getMessage() + " " + str(r.exc_info[1] if r.exc_info else "") for r in caplog.records
                    if "Incorrect action type" in str(r.exc_info[1] if r.exc_info else r.getMessage())]
    assert states and states[-1] in ("reverted", "failed"), (
        f"the parent is {states} 5 s after its child failed; {len(wrong_action)} late completions were "
        f"refused: {wrong_action[:1]}")
    assert compensated == ["first"]
    assert not wrong_action, wrong_action[:1]
