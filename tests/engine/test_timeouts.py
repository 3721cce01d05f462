"""Step timeouts and workflow timeouts (SPEC §1.2 timeout, §4; medusa-behaviour §12.3)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from stepwork import StepResponse, StepTimeoutError, TransactionTimeoutError, create_step, create_workflow, parallelize
from tests.engine._util import (
    NEVER_REACHED,
    SUCCEEDED,
    SUCCEEDED_COMPENSATED,
    TIMED_OUT_COMPENSATED,
    TIMED_OUT_IGNORED,
    states,
    step_records,
)


def _hanging(log, name):
    """A coroutine invoke that waits forever and logs how it was stopped."""
    async def invoke(inp, ctx):
        log.append((name, "started", ctx.attempt))
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            log.append((name, "cancelled"))
            raise
        finally:
            log.append((name, "finally"))
    return invoke


async def test_coroutine_step_is_cancelled_and_fails_permanently_on_timeout(wf_name):
    """A coroutine step past its timeout is cancelled (its finally runs), not retried, marked timeout."""
    log = []
    slow = create_step({"name": "slow", "timeout": 0.05, "max_retries": 2}, _hanging(log, "slow"),
                       lambda ci: log.append(("compensate slow", ci)))
    started = time.monotonic()
    result = await create_workflow(wf_name, lambda inp: slow()).run(throw_on_error=False)
    assert time.monotonic() - started < 0.4
    assert log == [("slow", "started", 1), ("slow", "cancelled"), ("slow", "finally"),
                   ("compensate slow", None)]
    assert result.transaction.state == "reverted"
    assert states(result) == {"slow": TIMED_OUT_COMPENSATED}
    [failure] = result.errors
    assert isinstance(failure.exception, StepTimeoutError)
    assert failure.error["name"] == "StepTimeoutError"
    assert failure.action == "slow"


async def test_step_timeout_raises_step_timeout_error(wf_name):
    """With throw_on_error a timed-out run raises StepTimeoutError."""
    slow = create_step({"name": "slow", "timeout": 0.02}, _hanging([], "slow"))
    with pytest.raises(StepTimeoutError):
        await create_workflow(wf_name, lambda inp: slow()).run()


async def test_coroutine_step_within_its_timeout_succeeds(wf_name):
    """A coroutine step that returns before its timeout is done/ok."""
    async def quick(inp, ctx):
        await asyncio.sleep(0)
        return "ok"

    step = create_step({"name": "quick", "timeout": 0.2}, quick)
    result = await create_workflow(wf_name, lambda inp: step()).run()
    assert result.result == "ok"
    assert states(result) == {"quick": SUCCEEDED}


async def test_plain_step_returning_late_is_marked_timeout_with_its_output(wf_name):
    """A plain step that returns after its timeout is timeout; its output is kept and compensates it."""
    compensated = []

    def late(inp, ctx):
        time.sleep(0.03)
        return {"v": 1}

    step = create_step({"name": "late", "timeout": 0.01, "max_retries": 2}, late, lambda ci: compensated.append(ci))
    result = await create_workflow(wf_name, lambda inp: step()).run(throw_on_error=False)
    assert compensated == [{"v": 1}]
    assert states(result) == {"late": TIMED_OUT_COMPENSATED}
    assert step_records(result)["late"]["attempts"] == 1
    assert isinstance(result.errors[0].exception, StepTimeoutError)
    assert result.transaction.context["data"]["invoke"] == {"late": {"v": 1}}
    assert result.transaction.state == "reverted"


async def test_plain_step_returning_late_step_response_compensates_with_its_input(wf_name):
    """A late StepResponse(output, compensate_input): the compensation receives compensate_input."""
    compensated = []

    def late():
        time.sleep(0.03)
        return StepResponse("out", "undo-me")

    step = create_step({"name": "late", "timeout": 0.01}, late, lambda ci: compensated.append(ci))
    result = await create_workflow(wf_name, lambda inp: step()).run(throw_on_error=False)
    assert compensated == ["undo-me"]
    assert states(result) == {"late": TIMED_OUT_COMPENSATED}


async def test_thread_step_returning_late_is_marked_timeout(wf_name):
    """A thread step that returns after its timeout is timeout with StepTimeoutError."""
    loop_thread = threading.get_ident()
    seen = []

    def late():
        seen.append(threading.get_ident())
        time.sleep(0.03)
        return "late"

    compensated = []
    step = create_step({"name": "late", "timeout": 0.01, "thread": True}, late, lambda ci: compensated.append(ci))
    result = await create_workflow(wf_name, lambda inp: step()).run(throw_on_error=False)
    assert seen and seen[0] != loop_thread
    assert states(result) == {"late": TIMED_OUT_COMPENSATED}
    assert isinstance(result.errors[0].exception, StepTimeoutError)
    assert compensated == ["late"]


async def test_ignored_step_timeout_is_timeout_dormant(wf_name):
    """A step timeout on a continue_on_permanent_failure step is recorded and ignored: done."""
    slow = create_step({"name": "slow", "timeout": 0.02, "continue_on_permanent_failure": True},
                       _hanging([], "slow"), lambda ci: None)
    after = create_step("after", lambda inp: ("after", inp))
    result = await create_workflow(wf_name, lambda inp: after(slow())).run()
    assert result.result == ("after", None)
    assert result.transaction.state == "done"
    assert states(result) == {"slow": TIMED_OUT_IGNORED, "after": SUCCEEDED}


async def test_workflow_timeout_cancels_running_steps_and_compensates(wf_name):
    """Workflow timeout: the running step is cancelled and timeout, later steps not_started, earlier reverted."""
    log = []
    first = create_step("first", lambda: "F", lambda ci: log.append(("compensate first", ci)))
    hang = create_step("hang", _hanging(log, "hang"), lambda ci: log.append(("compensate hang", ci)))
    never = create_step("never", lambda: log.append("never ran"))
    wf = create_workflow({"name": wf_name, "timeout": 0.05}, lambda inp: (first(), hang(), never()))
    result = await wf.run(throw_on_error=False)
    assert log == [("hang", "started", 1), ("hang", "cancelled"), ("hang", "finally"),
                   ("compensate hang", None), ("compensate first", "F")]
    assert result.transaction.state == "reverted"
    assert states(result) == {"first": SUCCEEDED_COMPENSATED, "hang": TIMED_OUT_COMPENSATED, "never": NEVER_REACHED}
    [failure] = result.errors
    assert failure.action == "hang"
    assert isinstance(failure.exception, TransactionTimeoutError)
    assert failure.error["name"] == "TransactionTimeoutError"
    assert result.transaction.execution["timedOutAt"] is not None
    with pytest.raises(TransactionTimeoutError):
        await wf.run()


async def test_workflow_timeout_marks_every_running_parallel_step(wf_name):
    """Workflow timeout during a parallel stage: each running step is timeout with its own error."""
    log = []
    h1 = create_step("h1", _hanging(log, "h1"), lambda ci: log.append("compensate h1"))
    h2 = create_step("h2", _hanging(log, "h2"), lambda ci: log.append("compensate h2"))
    quick = create_step("quick", lambda: "Q", lambda ci: log.append(("compensate quick", ci)))
    wf = create_workflow({"name": wf_name, "timeout": 0.05}, lambda inp: parallelize(h1(), quick(), h2()))
    result = await wf.run(throw_on_error=False)
    assert {("h1", "finally"), ("h2", "finally"), "compensate h1", "compensate h2",
            ("compensate quick", "Q")} <= set(log)
    assert states(result) == {"h1": TIMED_OUT_COMPENSATED, "h2": TIMED_OUT_COMPENSATED,
                              "quick": SUCCEEDED_COMPENSATED}
    assert sorted(e.action for e in result.errors) == ["h1", "h2"]
    assert all(isinstance(e.exception, TransactionTimeoutError) for e in result.errors)
    assert result.transaction.state == "reverted"


async def test_workflow_timeout_is_not_ignored_by_continue_on_permanent_failure(wf_name):
    """A workflow timeout on a continue_on_permanent_failure step still compensates: reverted, not done."""
    log = []
    hang = create_step({"name": "hang", "continue_on_permanent_failure": True}, _hanging(log, "hang"),
                       lambda ci: log.append("compensate hang"))
    after = create_step("after", lambda: log.append("after ran"))
    wf = create_workflow({"name": wf_name, "timeout": 0.05}, lambda inp: (hang(), after()))
    result = await wf.run(throw_on_error=False)
    assert "after ran" not in log
    assert "compensate hang" in log
    assert result.transaction.state == "reverted"
    assert states(result) == {"hang": TIMED_OUT_COMPENSATED, "after": NEVER_REACHED}
    assert result.acknowledgement.has_failed is True


async def test_workflow_timeout_between_steps_stops_before_the_next_step(wf_name):
    """A deadline passed by a plain step that ran late marks it timeout and no later step starts."""
    log = []

    def late():
        time.sleep(0.03)
        return "L"

    first = create_step("first", late, lambda ci: log.append(("compensate first", ci)))
    never = create_step("never", lambda: log.append("never ran"))
    wf = create_workflow({"name": wf_name, "timeout": 0.01}, lambda inp: (first(), never()))
    result = await wf.run(throw_on_error=False)
    assert log == [("compensate first", "L")]
    assert states(result) == {"first": TIMED_OUT_COMPENSATED, "never": NEVER_REACHED}
    assert isinstance(result.errors[0].exception, TransactionTimeoutError)
    assert result.transaction.state == "reverted"


async def test_coroutine_step_that_swallows_the_cancellation_still_times_out(wf_name):
    """A coroutine step that catches the timeout's cancellation and returns late is still timeout (SPEC §1.2)."""
    log = []

    async def stubborn(inp, ctx):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            log.append("cancelled")
            return "late"
        return "never"

    step = create_step({"name": "stubborn", "timeout": 0.02}, stubborn, lambda ci: log.append(("compensate", ci)))
    result = await create_workflow(wf_name, lambda inp: step()).run(throw_on_error=False)
    assert log[0] == "cancelled"
    assert states(result)["stubborn"][:2] == ("timeout", "permanent_failure")
    assert [type(e.exception) for e in result.errors] == [StepTimeoutError]
    assert result.transaction.state == "reverted"


async def test_workflow_timeout_during_a_retry_interval_times_the_step_out(wf_name):
    """A workflow deadline that falls inside a retry interval ends the step timeout, without another attempt."""
    attempts = []

    def flaky(inp, ctx):
        attempts.append(ctx.attempt)
        raise ValueError("again")

    step = create_step({"name": "flaky", "retry_interval": 0.03, "max_retries": 5}, flaky)
    wf = create_workflow({"name": wf_name, "timeout": 0.05}, lambda inp: step())
    result = await wf.run(throw_on_error=False)
    assert attempts == [1, 2]
    assert states(result)["flaky"][:2] == ("timeout", "permanent_failure")
    assert [type(e.exception) for e in result.errors] == [TransactionTimeoutError]
    assert result.transaction.state == "reverted"
