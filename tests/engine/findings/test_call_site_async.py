"""Finding 7: a step made async at its call site, ``step(x).config(**{"async": True})``.

Medusa (medusa-behaviour §13) infers background completion only from ``async`` in the step's own
definition; made async at the call site, a step always waits for ``set_step_success`` /
``set_step_failure``, whatever its invoke returns. Today such a step completes as soon as its invoke
returns a ``StepResponse``.
"""

from __future__ import annotations

from typing import Any

from stepwork import StepResponse, WorkflowEngine, create_step, create_workflow

from ._helpers import advance, eventually

CALL_SITE_ASYNC = {"async": True}  # `async` is a keyword: .config(**{"async": True})


def _reserve(value: Any) -> StepResponse[Any, Any]:
    return StepResponse({"held": value}, {"release": value})


async def _listed(engine: WorkflowEngine, wf_name: str) -> Any:
    [row] = await engine.list_workflow_executions({"workflow_id": wf_name})
    return row


async def test_call_site_async_step_waits_for_its_completion(engine: WorkflowEngine, wf_name: str) -> None:
    s = create_step("reserve", _reserve)
    wf = create_workflow({"name": wf_name, "retention_time": 60},
                         lambda inp: s(inp).config(**CALL_SITE_ASYNC))
    first = await engine.run(wf, 1, transaction_id="tx")
    assert first.transaction.state == "invoking"
    assert first.acknowledgement.has_finished is False
    steps = first.transaction.execution["steps"]
    assert steps["_root.reserve"]["invoke"] == {"state": "invoking", "status": "waiting_response"}

    done = await engine.set_step_success(f"{wf_name}:tx:reserve:invoke", {"held": "from outside"})
    assert done.transaction.state == "done"
    assert done.result == {"held": "from outside"}


async def test_listing_shows_a_waiting_call_site_async_step_invoking(engine: WorkflowEngine, wf_name: str) -> None:
    s = create_step("reserve", _reserve)
    wf = create_workflow({"name": wf_name, "retention_time": 60},
                         lambda inp: s(inp).config(**CALL_SITE_ASYNC))
    await engine.run(wf, 1, transaction_id="tx")
    row = await _listed(engine, wf_name)
    assert row.state == "invoking"
    assert row.execution["steps"]["_root.reserve"]["invoke"] == {"state": "invoking", "status": "waiting_response"}


async def test_waiting_call_site_async_step_times_out(engine: WorkflowEngine, wf_name: str, clock: Any) -> None:
    s = create_step("reserve", _reserve)
    wf = create_workflow({"name": wf_name, "retention_time": 60},
                         lambda inp: s(inp).config(**CALL_SITE_ASYNC, timeout=30))
    first = await engine.run(wf, 1, transaction_id="tx")
    assert first.transaction.state == "invoking"
    await advance(clock, 31)
    await engine.fire_due()

    async def reverted() -> bool:
        return (await _listed(engine, wf_name)).state == "reverted"
    await eventually(reverted)
    row = await _listed(engine, wf_name)
    assert row.execution["steps"]["_root.reserve"]["invoke"]["state"] == "timeout"


async def test_async_in_the_definition_with_background_execution_completes_by_itself(engine: WorkflowEngine,
                                                                                     wf_name: str) -> None:
    """Control (holds today, must keep holding): async + background_execution in the step's own
    definition completes the step with its invoke's return value."""
    bg = create_step({"name": "reserve", "async": True, "background_execution": True}, _reserve)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: bg(inp))
    first = await engine.run(wf, 1, transaction_id="tx")
    assert first.transaction.state == "invoking"

    async def done() -> bool:
        return (await _listed(engine, wf_name)).state == "done"
    await eventually(done)
    row = await _listed(engine, wf_name)
    assert row.context["data"]["invoke"]["reserve"] == {"held": 1}


async def test_async_in_the_definition_returning_a_step_response_completes_by_itself(engine: WorkflowEngine,
                                                                                    wf_name: str) -> None:
    """Control (holds today): ``async`` in the step's own definition and a ``StepResponse`` returned:
    the step completes with that response (Medusa's inferred background execution)."""
    s = create_step({"name": "reserve", "async": True}, _reserve)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    result = await engine.run(wf, 1, transaction_id="tx")

    async def done() -> bool:
        return (await _listed(engine, wf_name)).state == "done"
    await eventually(done)
    assert result.transaction.state in ("invoking", "done")
