"""Durable timers on every backend: retry intervals, manual retries, timeouts, awaiting retries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from stepwork import StepContext, StepResponse, StepworkError, create_step, create_workflow
from stepwork.engine.engine import WorkflowEngine


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 3.0) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds of real time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def state_of(engine: WorkflowEngine, workflow_id: str) -> str | None:
    rows = await engine.list_workflow_executions({"workflow_id": workflow_id})
    return rows[0].state if rows else None


async def test_retry_interval_is_a_durable_timer(engine: WorkflowEngine, wf_name: str, clock: Any) -> None:
    """With retry_interval the run returns while waiting; the retry fires when the interval passed."""
    attempts: list[int] = []

    def flaky(value: Any, ctx: StepContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt < 2:
            raise RuntimeError("not yet")
        return "ok"

    s = create_step({"name": "flaky", "max_retries": 2, "retry_interval": 3600}, flaky)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    first = await engine.run(wf, 1, transaction_id="tx")
    assert first.transaction.state == "invoking"
    assert attempts == [1]
    await asyncio.sleep(0.1)
    assert attempts == [1]  # not due yet
    clock.advance(3601)

    async def finished() -> bool:
        return await state_of(engine, wf_name) == "done"
    await eventually(finished)
    assert attempts == [1, 2]


async def test_auto_retry_false_waits_for_the_workflow_to_be_run_again(engine: WorkflowEngine, wf_name: str) -> None:
    """auto_retry=False: each run with the same transaction id performs one more attempt."""
    attempts: list[int] = []

    def flaky(value: Any, ctx: StepContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError(f"attempt {ctx.attempt}")
        return "finally"

    s = create_step({"name": "flaky", "max_retries": 5, "auto_retry": False}, flaky)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    r1 = await engine.run(wf, 1, transaction_id="tx")
    assert r1.transaction.state == "invoking" and attempts == [1]
    r2 = await engine.run(wf, 1, transaction_id="tx")
    assert r2.transaction.state == "invoking" and attempts == [1, 2]
    r3 = await engine.run(wf, 1, transaction_id="tx")
    assert r3.transaction.state == "done" and r3.result == "finally"
    assert r3.transaction.run_id == r1.transaction.run_id


async def test_async_step_timeout_fires_and_compensates(engine: WorkflowEngine, wf_name: str, clock: Any) -> None:
    """An async step waiting past its timeout is marked timeout and the workflow compensates; a late
    completion is refused (R25)."""
    undone: list[Any] = []
    first = create_step("first", lambda v: "made", lambda c: undone.append(c))
    wait = create_step({"name": "wait", "async": True, "timeout": 30}, lambda v: None)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: wait(first(inp)))
    await engine.run(wf, 1, transaction_id="tx")
    clock.advance(31)

    async def reverted() -> bool:
        return await state_of(engine, wf_name) == "reverted"
    await eventually(reverted)
    assert undone == ["made"]
    [row] = await engine.list_workflow_executions({"workflow_id": wf_name})
    assert row.execution is not None
    assert row.execution["steps"]["_root.first.wait"]["invoke"]["state"] == "timeout"
    try:
        await engine.set_step_success(f"{wf_name}:tx:wait:invoke", "late")
    except StepworkError as err:
        assert err.type == "not_allowed"
    else:
        raise AssertionError("a late completion must be refused")


async def test_workflow_timeout_ends_a_waiting_execution(engine: WorkflowEngine, wf_name: str, clock: Any) -> None:
    """The workflow timeout is a durable timer too: a run waiting on an async step is timed out."""
    events: list[str] = []
    wait = create_step({"name": "wait", "async": True}, lambda v: None)
    wf = create_workflow({"name": wf_name, "retention_time": 60, "timeout": 10}, lambda inp: wait(inp))
    await engine.subscribe(wf_name, lambda e: events.append(e["event_type"]))
    await engine.run(wf, 1, transaction_id="tx")
    clock.advance(11)

    async def reverted() -> bool:
        return await state_of(engine, wf_name) == "reverted"
    await eventually(reverted)
    assert "on_timeout" in events
    [row] = await engine.list_workflow_executions({"workflow_id": wf_name})
    assert row.execution is not None and row.execution["timedOutAt"] is not None


async def test_awaiting_retries_reinvoke_a_waiting_step_up_to_the_cap(engine: WorkflowEngine, wf_name: str,
                                                                      clock: Any) -> None:
    """retry_interval_awaiting re-invokes a waiting async step; max_awaiting_retries caps the invocations."""
    calls: list[int] = []

    def poll(value: Any, ctx: StepContext) -> None:
        calls.append(ctx.attempt)

    wait = create_step({"name": "wait", "async": True, "retry_interval_awaiting": 5, "max_awaiting_retries": 3},
                       poll)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: wait(inp))
    await engine.run(wf, 1, transaction_id="tx")
    for expected in (2, 3):
        clock.advance(5)

        async def invoked(n: int = expected) -> bool:
            return len(calls) == n
        await eventually(invoked)
    clock.advance(5)
    await asyncio.sleep(0.15)
    assert calls == [1, 2, 3]
    done = await engine.set_step_success(f"{wf_name}:tx:wait:invoke", "ok")
    assert done.transaction.state == "done"


async def test_background_execution_completes_the_step_with_its_return_value(engine: WorkflowEngine,
                                                                              wf_name: str) -> None:
    """A background async step returns at once; its invoke's value completes the step later."""
    gate = asyncio.Event()

    async def work(value: Any) -> StepResponse[str, str]:
        await gate.wait()
        return StepResponse(f"processed {value}")

    bg = create_step({"name": "bg", "async": True, "background_execution": True}, work)
    after = create_step("after", lambda v: v.upper())
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: after(bg(inp)))
    first = await engine.run(wf, "order", transaction_id="tx")
    assert first.transaction.state == "invoking"
    gate.set()

    async def finished() -> bool:
        return await state_of(engine, wf_name) == "done"
    await eventually(finished)
    [row] = await engine.list_workflow_executions({"workflow_id": wf_name})
    assert row.context is not None
    assert row.context["data"]["invoke"]["after"] == "PROCESSED ORDER"


async def test_overdue_timers_fire_when_an_engine_starts(database_url: str, wf_name: str, clock: Any,
                                                         tmp_path: Any) -> None:
    """A retry timer that became due while no engine ran fires as soon as one starts (R07)."""
    if database_url == "sqlite://":  # an in-memory database dies with its engine: use a file
        database_url = f"sqlite:///{tmp_path / 'timers.db'}"
    attempts: list[int] = []

    def flaky(value: Any, ctx: StepContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    s = create_step({"name": "flaky", "max_retries": 1, "retry_interval": 60}, flaky)
    wf = create_workflow({"name": wf_name, "retention_time": 600}, lambda inp: s(inp))
    async with WorkflowEngine(database_url, clock=clock, poll_interval=10) as first:
        await first.run(wf, 1, transaction_id="tx")
    clock.advance(120)
    async with WorkflowEngine(database_url, clock=clock, poll_interval=10) as second:
        [row] = await second.list_workflow_executions({"workflow_id": wf_name})
        assert row.state == "done"
    assert attempts == [1, 2]
