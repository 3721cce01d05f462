"""Running: result shapes, result_from, run_sync and the runner form (SPEC §2.1)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stepwork import Container, StepworkError, WorkflowResponse, create_step, create_workflow, transform


def _two_step_workflow(name: str, calls: list[str] | None = None) -> Any:
    def first_fn(value: Any) -> dict[str, Any]:
        if calls is not None:
            calls.append("first")
        return {"first": value}

    first = create_step("first", first_fn)
    second = create_step("second", lambda value: {"second": value})

    def composer(inp: Any) -> WorkflowResponse[Any]:
        a = first(inp)
        b = second(a)
        return WorkflowResponse({"composed": b})

    return create_workflow(name, composer)


async def test_result_from_returns_that_steps_output(wf_name: str) -> None:
    """result_from="step-name" returns that step's output instead of the composer's result."""
    wf = _two_step_workflow(wf_name)

    result = await wf.run(1, result_from="first")

    assert result.result == {"first": 1}
    assert (await wf.run(1)).result == {"composed": {"second": {"first": 1}}}


async def test_result_from_unknown_step_is_an_error_before_running(wf_name: str) -> None:
    """result_from naming no step raises StepworkError naming it, and runs nothing."""
    calls: list[str] = []
    wf = _two_step_workflow(wf_name, calls)

    with pytest.raises(StepworkError) as info:
        await wf.run(1, result_from="missing-step")

    assert "missing-step" in info.value.message
    assert calls == []


async def test_result_shape_of_a_done_run(wf_name: str) -> None:
    """A done run reports its state, no errors, and a finished, non-failed acknowledgement."""
    wf = _two_step_workflow(wf_name)

    result = await wf.run(1)

    assert result.transaction.state == "done"
    assert result.errors == []
    assert result.acknowledgement.has_finished is True
    assert result.acknowledgement.has_failed is False
    assert result.acknowledgement.workflow_id == wf_name
    execution = result.transaction.execution
    assert execution["state"] == "done"
    assert execution["modelId"] == wf_name
    assert result.transaction.context["data"]["payload"] == 1
    assert result.transaction.context["data"]["invoke"] == {"first": {"first": 1},
                                                            "second": {"second": {"first": 1}}}


def test_run_sync_works_without_an_event_loop(wf_name: str) -> None:
    """run_sync runs the workflow from plain synchronous code."""
    wf = _two_step_workflow(wf_name)

    result = wf.run_sync(2)

    assert result.result == {"composed": {"second": {"first": 2}}}
    assert result.transaction.state == "done"


def test_runner_run_sync_uses_its_container(wf_name: str) -> None:
    """wf(container).run_sync() runs with the bound container."""
    seen: list[Any] = []
    s = create_step("s", lambda _, ctx: seen.append(ctx.container))
    wf = create_workflow(wf_name, lambda inp: s())
    container = Container()

    wf(container).run_sync()

    assert seen == [container]


def test_run_sync_raises_the_original_error(wf_name: str) -> None:
    """run_sync with throw_on_error raises the step's original exception."""
    err = ValueError("sync failure")

    def fail(_: Any) -> None:
        raise err

    s = create_step("s", fail)
    wf = create_workflow(wf_name, lambda inp: s())

    with pytest.raises(ValueError) as info:
        wf.run_sync()

    assert info.value is err


async def test_run_sync_inside_a_running_loop_is_an_error(wf_name: str) -> None:
    """run_sync called inside a running event loop raises StepworkError pointing to `await wf.run`."""
    calls: list[str] = []
    wf = _two_step_workflow(wf_name, calls)

    with pytest.raises(StepworkError) as info:
        wf.run_sync(1)
    assert "await" in info.value.message

    with pytest.raises(StepworkError):
        wf(Container()).run_sync(1)

    assert calls == []


async def test_invalid_transaction_id_is_an_error(wf_name: str) -> None:
    """An empty transaction id is refused with StepworkError."""
    wf = _two_step_workflow(wf_name)

    with pytest.raises(StepworkError):
        await wf.run(1, transaction_id="")


async def test_events_callbacks_receive_step_events(wf_name: str) -> None:
    """events callbacks are called in order as the run progresses."""
    seen: list[tuple[str, Any]] = []
    wf = _two_step_workflow(wf_name)

    def record(event: dict[str, Any]) -> None:
        seen.append((event["event_type"], event.get("step", {}).get("id")))

    await wf.run(1, events={"on_begin": record, "on_step_success": record, "on_finish": record})

    assert seen == [("on_begin", None), ("on_step_success", "_root.first"),
                    ("on_step_success", "_root.first.second"), ("on_finish", None)]


async def test_unknown_event_type_is_an_error(wf_name: str) -> None:
    """An unknown event type in events raises StepworkError naming it."""
    wf = _two_step_workflow(wf_name)

    with pytest.raises(StepworkError) as info:
        await wf.run(1, events={"on_stpe_success": lambda e: None})

    assert "on_stpe_success" in info.value.message


async def test_concurrent_runs_of_one_workflow_are_isolated(wf_name: str) -> None:
    """Two interleaved runs of one workflow keep their own inputs, outputs and transforms."""
    arrived: dict[int, asyncio.Event] = {1: asyncio.Event(), 2: asyncio.Event()}

    async def wait_for_other(value: int) -> int:
        arrived[value].set()
        await asyncio.wait_for(arrived[3 - value].wait(), 2.0)
        return value * 100

    first = create_step("first", wait_for_other)
    second = create_step("second", lambda value: value)

    def composer(inp: Any) -> Any:
        out = first(inp)
        return second({"out": out, "t": transform(out, lambda v: v + 1), "inp": inp})

    wf = create_workflow(wf_name, composer)
    r1, r2 = await asyncio.gather(wf.run(1), wf.run(2))

    assert r1.result == {"out": 100, "t": 101, "inp": 1}
    assert r2.result == {"out": 200, "t": 201, "inp": 2}
    assert r1.transaction.transaction_id != r2.transaction.transaction_id
