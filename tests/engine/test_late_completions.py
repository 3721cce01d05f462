"""Completions that arrive for an action the step has left are dropped, never fail the run.

The first case is Medusa's race.spec.ts: a nested workflow run as an async, background step with
awaiting retries, whose inner step fails after a while. The awaiting re-invocations start more
children; once compensation begins, their late completions must not get in its way.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from stepwork import StepContext, StepworkError, create_step, create_workflow
from stepwork.engine.engine import WorkflowEngine


async def _state(engine: WorkflowEngine, workflow_id: str, transaction_id: str) -> str | None:
    rows = await engine.list_workflow_executions({"workflow_id": workflow_id, "transaction_id": transaction_id})
    return rows[0].state if rows else None


async def _wait_for(engine: WorkflowEngine, workflow_id: str, transaction_id: str, states: tuple[str, ...],
                    timeout: float) -> str | None:
    deadline = asyncio.get_running_loop().time() + timeout
    state = await _state(engine, workflow_id, transaction_id)
    while state not in states and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        state = await _state(engine, workflow_id, transaction_id)
    return state


async def test_a_failing_background_nested_step_with_awaiting_retries_reverts_promptly(
        database_url: str, wf_name: str, caplog: pytest.LogCaptureFixture) -> None:
    compensated: list[str] = []

    async def slow_fail(value: Any) -> None:
        await asyncio.sleep(1)
        raise RuntimeError("inner step failed")

    inner = create_step("inner-fail", slow_fail)
    child = create_workflow({"name": wf_name + "-child", "retention_time": 60}, lambda inp: inner(inp))
    first = create_step("first", lambda v: "one")

    @first.compensate
    def undo_first(value: Any) -> None:
        compensated.append(value)

    def compose(inp: Any) -> Any:
        first(inp)
        return child.run_as_step(inp).config(**{
            "async": True, "compensate_async": True, "background_execution": True,
            "retry_interval_awaiting": 0.1, "max_awaiting_retries": 3})

    parent = create_workflow({"name": wf_name, "retention_time": 60}, compose)
    caplog.set_level(logging.INFO, logger="stepwork.engine")
    async with WorkflowEngine(database_url, poll_interval=0.02) as engine:
        started = await engine.run(parent, {"n": 1}, transaction_id="race")
        assert started.transaction.state == "invoking"
        state = await _wait_for(engine, wf_name, "race", ("reverted", "failed"), timeout=6)
        assert state in ("reverted", "failed"), f"still {state}"
        await asyncio.sleep(1.5)  # the children of later attempts finish too, and are dropped
        assert await _state(engine, wf_name, "race") == state
    assert compensated == ["one"]
    assert "Completing a background step failed" not in caplog.text
    assert "Incorrect action type" not in caplog.text


async def test_a_late_background_completion_after_a_timeout_is_dropped(engine: WorkflowEngine,
                                                                       wf_name: str, clock: Any) -> None:
    release = asyncio.Event()
    finished: list[str] = []

    async def slow(value: Any, ctx: StepContext) -> str:
        await release.wait()
        finished.append("returned")
        return "late"

    s = create_step({"name": "slow", "async": True, "background_execution": True, "timeout": 5}, slow)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    first = await engine.run(wf, 1, transaction_id="tx")
    assert first.transaction.state == "invoking"
    clock.advance(6)
    await engine.fire_due()
    assert await _state(engine, wf_name, "tx") == "reverted"
    release.set()
    for _ in range(100):
        if finished:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert await _state(engine, wf_name, "tx") == "reverted"  # the late result changed nothing


async def test_a_late_set_step_success_is_refused_without_touching_the_run(engine: WorkflowEngine,
                                                                          wf_name: str, clock: Any) -> None:
    s = create_step({"name": "wait", "async": True, "timeout": 5}, lambda v: None)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    await engine.run(wf, 1, transaction_id="tx")
    clock.advance(6)
    await engine.fire_due()
    assert await _state(engine, wf_name, "tx") == "reverted"
    with pytest.raises(StepworkError) as err:
        await engine.set_step_success(f"{wf_name}:tx:wait:invoke", "too late")
    assert err.value.type == "not_allowed"
    assert await _state(engine, wf_name, "tx") == "reverted"


async def test_a_late_set_step_success_after_cancel_is_refused(engine: WorkflowEngine, wf_name: str) -> None:
    s = create_step({"name": "wait", "async": True}, lambda v: None)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    await engine.run(wf, 1, transaction_id="tx")
    await engine.cancel(wf_name, "tx")
    with pytest.raises(StepworkError) as err:
        await engine.set_step_success(f"{wf_name}:tx:wait:invoke", "too late")
    assert err.value.type == "not_allowed"
    assert await _state(engine, wf_name, "tx") == "reverted"
