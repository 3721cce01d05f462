"""The testing toolkit used the way its users will use it."""

from __future__ import annotations

from typing import Any

import pytest

from stepwork import StepContext, WorkflowEngine, create_step, create_workflow
from stepwork.testing import FakeClock, SimulatedCrash, crash_after, fail_step, override_steps, timeline


def _order_workflow(name: str, charged: list[Any]) -> Any:
    reserve = create_step("reserve-stock", lambda order: {"reserved": order["qty"]},
                          lambda r: charged.append(("release", r)))
    charge = create_step({"name": "charge-card", "max_retries": 2},
                         lambda order: charged.append(("charge", order)) or "ch_1",
                         lambda c: charged.append(("refund", c)))
    ship = create_step("ship", lambda order: "shipped")
    return create_workflow({"name": name, "retention_time": 3600},
                           lambda order: (reserve(order), charge(order), ship(order))[2])


async def test_timeline_reads_a_compensated_run(stepwork_engine: WorkflowEngine, wf_name: str) -> None:
    """fail_step on every attempt of ship: the timeline shows what ran and what was undone, newest first."""
    log: list[Any] = []
    wf = _order_workflow(wf_name, log)
    with fail_step(wf, "ship"):
        result = await stepwork_engine.run(wf, {"qty": 2}, throw_on_error=False)
    t = timeline(result)
    assert t.invoked == ["reserve-stock", "charge-card", "ship"]
    assert t.failed == ["ship"]
    assert t.compensated == ["charge-card", "reserve-stock"]
    assert t.step("charge-card").input == {"qty": 2}
    assert t.step("reserve-stock").output == {"reserved": 2}
    assert t.step("ship").error is not None


async def test_override_and_fail_on_chosen_attempts(stepwork_engine: WorkflowEngine, wf_name: str) -> None:
    """A fake charge replaces the real one; failing attempts 1 and 2 of it retries to success."""
    log: list[Any] = []
    wf = _order_workflow(wf_name, log)
    with override_steps(wf, {"charge-card": lambda order: "fake-charge"}), \
            fail_step(wf, "charge-card", attempts=[1, 2]):
        result = await stepwork_engine.run(wf, {"qty": 1})
    assert result.transaction.state == "done"
    assert timeline(result).step("charge-card").attempts == 3
    assert ("charge", {"qty": 1}) not in log


async def test_an_hour_long_retry_interval_passes_in_no_time(stepwork_engine: WorkflowEngine,
                                                             stepwork_clock: FakeClock, wf_name: str) -> None:
    """A retry interval of one hour: advancing the fake clock fires it at once."""
    calls: list[int] = []

    def flaky(value: Any, ctx: StepContext) -> str:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("later")
        return "ok"

    s = create_step({"name": "flaky", "max_retries": 1, "retry_interval": 3600}, flaky)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    first = await stepwork_engine.run(wf, 1, transaction_id="t")
    assert first.transaction.state == "invoking"
    await stepwork_clock.advance(3600)
    [row] = await stepwork_engine.list_workflow_executions({"workflow_id": wf_name})
    assert row.state == "done" and calls == [1, 2]


async def test_crash_after_a_checkpoint_then_recovery(stepwork_engine: WorkflowEngine, stepwork_clock: FakeClock,
                                                      wf_name: str) -> None:
    """crash_after stops the run after charge-card's checkpoint; once the lease expires the engine
    resumes it: reserve-stock is not run again."""
    log: list[Any] = []
    wf = _order_workflow(wf_name, log)
    with crash_after(wf, "charge-card"), pytest.raises(SimulatedCrash):
        await stepwork_engine.run(wf, {"qty": 3}, transaction_id="o-1")
    await stepwork_clock.advance(stepwork_engine.lease_ttl + 1)
    [row] = await stepwork_engine.list_workflow_executions({"workflow_id": wf_name})
    assert row.state == "done"
    assert timeline(row).invoked == ["reserve-stock", "charge-card", "ship"]


async def test_clock_never_goes_back(stepwork_clock: FakeClock) -> None:
    """Advancing by a negative amount raises invalid_argument."""
    from stepwork import StepworkError

    with pytest.raises(StepworkError) as err:
        await stepwork_clock.advance(-1)
    assert err.value.type == "invalid_argument"


def test_unknown_step_names_list_the_workflow_steps(wf_name: str) -> None:
    """Overriding or failing a step the workflow does not have names it and lists the steps."""
    from stepwork import StepworkError

    wf = _order_workflow(wf_name, [])
    with pytest.raises(StepworkError) as err, fail_step(wf, "charge"):
        pass
    assert "charge-card" in str(err.value) and '"charge"' in str(err.value)
