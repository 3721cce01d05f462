"""Edges found by the review of the one-run-loop rewrite: a nested child that waits on a retry, a
background step retried while its first attempt's stand-in timer is still stored, a parent reverting a
child that finished on its own, and a typed input whose class is defined after the step."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from stepwork import create_step, create_workflow
from stepwork.engine.engine import WorkflowEngine

if TYPE_CHECKING:
    from stepwork import StepContext


async def _state(engine: WorkflowEngine, workflow_id: str) -> str:
    [row] = await engine.list_workflow_executions({"workflow_id": workflow_id})
    return row.state


async def test_a_stored_parent_waits_for_a_nested_child_waiting_on_a_retry(engine: WorkflowEngine, wf_name: str,
                                                                           clock: Any) -> None:
    attempts: list[int] = []

    def flaky(value: Any, ctx: StepContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("not yet")
        return "child-ok"

    inner = create_step({"name": "flaky", "max_retries": 2, "retry_interval": 10}, flaky)
    child = create_workflow({"name": wf_name + "-child"}, lambda inp: inner(inp))
    seen: list[Any] = []
    after = create_step("after", lambda v: seen.append(v) or v)
    parent = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: after(child.run_as_step(inp)))
    first = await engine.run(parent, 1, transaction_id="p")
    assert first.transaction.state == "invoking"  # it waits with its child
    assert seen == []
    clock.advance(11)
    await engine.fire_due()
    await engine.fire_due()
    assert await _state(engine, wf_name) == "done"
    assert seen == ["child-ok"]
    assert attempts == [1, 2]


async def test_a_retried_background_step_is_not_invoked_again_by_its_first_attempts_timer(
        tmp_path: Path, wf_name: str) -> None:
    attempts: list[int] = []

    async def work(value: Any, ctx: StepContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        await asyncio.sleep(0.8)  # longer than the stand-in timer's 2 x lease_ttl
        return "done"

    s = create_step({"name": "bg", "async": True, "background_execution": True, "max_retries": 3}, work)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    async with WorkflowEngine(f"sqlite:///{tmp_path / 'bg.db'}", lease_ttl=0.2, poll_interval=0.02) as engine:
        await engine.run(wf, 1, transaction_id="bg")
        for _ in range(300):
            if await _state(engine, wf_name) == "done":
                break
            await asyncio.sleep(0.01)
        assert await _state(engine, wf_name) == "done"
    assert attempts == [1, 2]


async def test_a_parent_reverts_a_child_that_finished_on_its_own(engine: WorkflowEngine, wf_name: str) -> None:
    undone: list[Any] = []
    wait = create_step({"name": "wait", "async": True}, lambda v: None, lambda c: undone.append(c))
    child = create_workflow({"name": wf_name + "-child"}, lambda inp: wait(inp))

    def boom(value: Any) -> None:
        raise RuntimeError("boom")

    after = create_step("boom", boom)
    parent = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: after(child.run_as_step(inp)))
    first = await engine.run(parent, 1, transaction_id="p", throw_on_error=False)
    assert first.transaction.state == "invoking"
    key = f"{wf_name}-child:{wf_name}-child-as-step-p:wait:invoke"
    await asyncio.wait_for(engine.set_step_success(key, "x"), 5)  # it used to wait for itself for ever
    assert await _state(engine, wf_name) == "reverted"
    assert len(undone) == 1


def _typed(inp: LaterModel, ctx: StepContext) -> str:
    # ``StepContext`` is imported for type checking only, and ``LaterModel`` is defined below.
    return type(inp).__name__


later_step = create_step("typed-later", _typed)
# Composed before the class exists: its input's type is found when the step first runs.
later_wf = create_workflow("edges-typed-later", lambda inp: later_step(inp))


class LaterModel(BaseModel):
    x: int


async def test_a_model_defined_after_the_step_is_still_converted() -> None:
    assert (await later_wf.run({"x": 1})).result == "LaterModel"
