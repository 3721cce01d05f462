"""Regressions found in review: waiting steps are never left behind by compensation, and a drive that
stops on an error gives its lease up."""

from __future__ import annotations

from typing import Any

import pytest

from stepwork import StepworkError, create_step, create_workflow, parallelize
from stepwork.engine import faults
from stepwork.engine.engine import WorkflowEngine


async def test_a_waiting_async_sibling_is_failed_and_compensated_when_another_fails(
        engine: WorkflowEngine, wf_name: str) -> None:
    """parallelize(async charge, failing boom): charge is failed at once and compensated too, never left
    waiting in a reverted execution."""
    undone: list[str] = []

    def boom(value: Any) -> None:
        raise RuntimeError("boom")

    charge = create_step({"name": "charge", "async": True}, lambda v: None, lambda c: undone.append("charge"))
    failing = create_step("boom", boom, lambda c: undone.append("boom"))
    wf = create_workflow({"name": wf_name, "retention_time": 60},
                         lambda inp: parallelize(charge(inp), failing(inp)))
    result = await engine.run(wf, 1, transaction_id="t", throw_on_error=False)
    assert result.transaction.state == "reverted"
    assert sorted(undone) == ["boom", "charge"]
    steps = result.transaction.execution["steps"]
    assert steps["_root.charge"]["invoke"]["state"] == "failed"


async def test_cancelling_a_parent_reverts_its_waiting_child(engine: WorkflowEngine, wf_name: str) -> None:
    """A parent cancelled while its nested child waits: the child's completed steps are compensated,
    newest first, before the parent's."""
    undone: list[str] = []
    c1 = create_step("c1", lambda v: "c1", lambda c: undone.append("c1"))
    wait = create_step({"name": "wait", "async": True}, lambda v: None)
    child = create_workflow({"name": f"{wf_name}-child"}, lambda inp: wait(c1(inp)))
    first = create_step("first", lambda v: "first", lambda c: undone.append("first"))
    wf = create_workflow({"name": wf_name, "retention_time": 60},
                         lambda inp: child.run_as_step(first(inp)))
    started = await engine.run(wf, 1, transaction_id="p")
    assert started.transaction.state == "invoking"
    result = await engine.cancel(wf_name, "p")
    assert result is not None and result.transaction.state == "reverted"
    assert undone == ["c1", "first"]


async def test_a_drive_stopped_by_a_database_error_is_recovered(engine: WorkflowEngine, wf_name: str,
                                                                clock: Any) -> None:
    """A database error in the middle of a run gives the lease up: once it expires the engine resumes the
    run instead of renewing a lease nobody uses."""
    calls: list[str] = []
    s1 = create_step("s1", lambda v: calls.append("s1") or 1)
    s2 = create_step("s2", lambda v: calls.append("s2") or 2)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s2(s1(inp)))
    fired: list[bool] = []

    def db_down() -> None:
        if not fired:
            fired.append(True)
            raise StepworkError(StepworkError.Types.DB_ERROR, "connection lost (injected)")

    faults.arm("checkpoint.after:s2", db_down)
    try:
        with pytest.raises(StepworkError) as err:
            await engine.run(wf, 0, transaction_id="t")
        assert err.value.type == "database_error"
    finally:
        faults.disarm("checkpoint.after:s2")
    await engine._renew()  # the renewal loop must not keep the abandoned lease alive
    clock.advance(engine.lease_ttl + 1)
    await engine.fire_due()
    [row] = await engine.list_workflow_executions({"workflow_id": wf_name})
    assert row.state == "done"
    assert calls == ["s1", "s2"]


async def test_a_slow_step_woken_by_a_timer_does_not_hold_up_other_timers(engine: WorkflowEngine, wf_name: str,
                                                                          clock: Any) -> None:
    """The background timer loop does not wait for the runs it wakes: while a slow retried step runs,
    another workflow's retry still fires on time."""
    import asyncio

    from stepwork import StepContext

    gate = asyncio.Event()

    async def slow(value: Any, ctx: StepContext) -> str:
        if ctx.attempt == 1:
            raise RuntimeError("retry me")
        await gate.wait()
        return "slow done"

    def quick(value: Any, ctx: StepContext) -> str:
        if ctx.attempt == 1:
            raise RuntimeError("retry me")
        return "quick done"

    slow_step = create_step({"name": "slow", "max_retries": 1, "retry_interval": 10}, slow)
    quick_step = create_step({"name": "quick", "max_retries": 1, "retry_interval": 20}, quick)
    slow_wf = create_workflow({"name": f"{wf_name}-slow", "retention_time": 60}, lambda inp: slow_step(inp))
    quick_wf = create_workflow({"name": f"{wf_name}-quick", "retention_time": 60}, lambda inp: quick_step(inp))
    await engine.run(slow_wf, 1, transaction_id="s")
    await engine.run(quick_wf, 1, transaction_id="q")

    async def state(name: str) -> str:
        return (await engine.list_workflow_executions({"workflow_id": name}))[0].state

    clock.advance(10)  # the slow step's retry is due: the loop wakes it and it blocks on the gate
    clock.advance(10)  # then the quick one's retry
    deadline = asyncio.get_running_loop().time() + 3
    while await state(f"{wf_name}-quick") != "done":
        assert asyncio.get_running_loop().time() < deadline, "the quick retry waited for the slow step"
        await asyncio.sleep(0.01)
    assert await state(f"{wf_name}-slow") == "invoking"
    gate.set()
    while await state(f"{wf_name}-slow") != "done":
        assert asyncio.get_running_loop().time() < deadline + 3
        await asyncio.sleep(0.01)


async def test_a_background_step_cut_off_by_a_stop_is_invoked_again(database_url: str, wf_name: str, clock: Any,
                                                                    tmp_path: Any) -> None:
    """A background step whose engine stops before it completes is invoked again by the next engine once
    its background timer comes due (at least once), and the run finishes."""
    import asyncio

    if database_url == "sqlite://":  # an in-memory database dies with its engine: use a file
        database_url = f"sqlite:///{tmp_path / 'background.db'}"
    calls: list[int] = []
    first_gate = asyncio.Event()

    async def work(value: Any) -> str:
        calls.append(value)
        if len(calls) == 1:
            await first_gate.wait()  # the first engine stops while this runs
        return "done in the background"

    bg = create_step({"name": "bg", "async": True, "background_execution": True}, work)
    wf = create_workflow({"name": wf_name, "retention_time": 600}, lambda inp: bg(inp))
    async with WorkflowEngine(database_url, clock=clock, poll_interval=3600, lease_ttl=5) as first:
        started = await first.run(wf, 7, transaction_id="t")
        assert started.transaction.state == "invoking"
        while not calls:  # the background task starts
            await asyncio.sleep(0)
        clock.advance(11)
        await first.fire_due()  # while the task lives, its timer is pushed on, not fired
        assert calls == [7]
    async with WorkflowEngine(database_url, clock=clock, poll_interval=3600, lease_ttl=5) as second:
        clock.advance(11)  # its timer was last pushed on by the first engine: now it comes due
        await second.fire_due()
        deadline = asyncio.get_running_loop().time() + 3
        while (await second.list_workflow_executions({"workflow_id": wf_name}))[0].state != "done":
            assert asyncio.get_running_loop().time() < deadline, "the background step was not invoked again"
            await asyncio.sleep(0.01)
    assert calls == [7, 7]
