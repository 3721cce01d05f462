"""permanent_failure, skip, skip_on_permanent_failure and continue_on_permanent_failure in runs."""

from __future__ import annotations

import pytest

from stepwork import PermanentStepFailure, StepResponse, WorkflowResponse, create_step, create_workflow, parallelize
from tests.engine._util import (
    FAILED_COMPENSATED,
    FAILURE_IGNORED,
    NEVER_REACHED,
    SKIPPED,
    SKIPPED_ON_FAILURE,
    SUCCEEDED,
    SUCCEEDED_COMPENSATED,
    states,
)


async def test_permanent_failure_is_not_retried_and_passes_its_compensate_input(wf_name):
    """return StepResponse.permanent_failure(msg, compensate_input): one attempt, own compensation gets the input."""
    attempts, compensated = [], []

    def charge(inp, ctx):
        attempts.append(ctx.attempt)
        return StepResponse.permanent_failure("card declined", {"charged": 5})

    step = create_step({"name": "charge", "max_retries": 3}, charge, lambda ci: compensated.append(ci))
    result = await create_workflow(wf_name, lambda inp: step()).run(throw_on_error=False)
    assert attempts == [1]
    assert compensated == [{"charged": 5}]
    assert result.transaction.state == "reverted"
    assert states(result) == {"charge": FAILED_COMPENSATED}
    [failure] = result.errors
    assert isinstance(failure.exception, PermanentStepFailure)
    assert failure.error["message"] == "card declined"
    assert failure.error["name"] == "PermanentStepFailure"


async def test_raised_permanent_failure_without_input_compensates_with_none(wf_name):
    """raise StepResponse.permanent_failure() from an async step: no retry, compensation gets None."""
    attempts, compensated = [], []

    async def invoke(inp, ctx):
        attempts.append(ctx.attempt)
        raise PermanentStepFailure("gone")

    step = create_step({"name": "p", "max_retries": 2}, invoke, lambda ci: compensated.append(ci))
    with pytest.raises(PermanentStepFailure, match="gone"):
        await create_workflow(wf_name, lambda inp: step()).run()
    assert attempts == [1]
    assert compensated == [None]


async def test_skip_gives_none_downstream_and_the_run_is_done(wf_name):
    """StepResponse.skip(): the step ends skipped/ok, later steps read None, the run ends done."""
    a = create_step("a", lambda: StepResponse.skip())
    b = create_step("b", lambda inp: {"got": inp})

    def composer(inp):
        ra = a()
        return WorkflowResponse({"a": ra, "b": b(ra)})

    result = await create_workflow(wf_name, composer).run()
    assert result.result == {"a": None, "b": {"got": None}}
    assert result.transaction.state == "done"
    assert states(result) == {"a": SKIPPED, "b": SUCCEEDED}
    assert result.transaction.execution["hasSkippedSteps"] is True
    assert result.transaction.context["data"]["invoke"] == {"b": {"got": None}}


async def test_skip_on_permanent_failure_true_skips_every_later_step(wf_name):
    """skip_on_permanent_failure=True: later steps end skipped_failure, none runs, final state done."""
    ran = []
    step1 = create_step({"name": "step1", "skip_on_permanent_failure": True}, lambda: 1 / 0,
                        lambda ci: ran.append("compensate step1"))
    later = [create_step(n, lambda n=n: ran.append(n)) for n in ("step2", "step3", "step4")]

    def composer(inp):
        step1()
        later[0]()
        parallelize(later[1](), later[2]())

    result = await create_workflow(wf_name, composer).run()  # done: does not raise
    assert ran == []
    assert result.transaction.state == "done"
    assert states(result) == {"step1": FAILURE_IGNORED, "step2": SKIPPED_ON_FAILURE,
                              "step3": SKIPPED_ON_FAILURE, "step4": SKIPPED_ON_FAILURE}
    execution = result.transaction.execution
    assert execution["hasSkippedOnFailureSteps"] is True
    assert [(e.action, e.handler_type) for e in result.errors] == [("step1", "invoke")]
    assert result.acknowledgement.has_failed is False


async def test_skip_on_permanent_failure_until_a_named_step(wf_name):
    """medusa-behaviour §11.5: step1(skip->"step3"), parallelize(step2, step3), step4: step2 skipped, 3 and 4 run."""
    ran = []
    step1 = create_step({"name": "step1", "skip_on_permanent_failure": "step3"}, lambda: 1 / 0)
    step2 = create_step("step2", lambda: ran.append("step2"))
    step3 = create_step("step3", lambda: ran.append("step3") or 3)
    step4 = create_step("step4", lambda inp: ran.append(("step4", inp)) or 4)

    def composer(inp):
        step1()
        _, three = parallelize(step2(), step3())
        return step4(three)

    result = await create_workflow(wf_name, composer).run()
    assert ran == ["step3", ("step4", 3)]
    assert result.result == 4
    assert result.transaction.state == "done"
    assert states(result) == {"step1": FAILURE_IGNORED, "step2": SKIPPED_ON_FAILURE, "step3": SUCCEEDED,
                              "step4": SUCCEEDED}
    assert result.transaction.execution["hasSkippedOnFailureSteps"] is True


async def test_continue_on_permanent_failure_ends_done(wf_name):
    """continue_on_permanent_failure: the failure is recorded, later steps read None, the run ends done."""
    compensated = []
    a = create_step({"name": "a", "continue_on_permanent_failure": True, "max_retries": 1}, lambda: 1 / 0,
                    lambda ci: compensated.append(ci))
    b = create_step("b", lambda inp: {"a was": inp})
    result = await create_workflow(wf_name, lambda inp: b(a())).run()
    assert result.result == {"a was": None}
    assert result.transaction.state == "done"
    assert compensated == []
    assert states(result) == {"a": FAILURE_IGNORED, "b": SUCCEEDED}
    assert result.transaction.execution["hasFailedSteps"] is True
    assert [(e.action, e.handler_type) for e in result.errors] == [("a", "invoke")]
    assert result.acknowledgement.has_failed is False


async def test_ignored_failure_is_compensated_when_a_later_step_fails(wf_name):
    """A later failure compensates the ignored-failure step too, newest first, with None."""
    log = []
    a = create_step({"name": "a", "continue_on_permanent_failure": True}, lambda: 1 / 0,
                    lambda ci: log.append(("compensate a", ci)))
    b = create_step("b", lambda: "B", lambda ci: log.append(("compensate b", ci)))
    c = create_step("c", lambda: StepResponse.permanent_failure("c fails"), lambda ci: log.append(("compensate c", ci)))
    result = await create_workflow(wf_name, lambda inp: (a(), b(), c())).run(throw_on_error=False)
    assert log == [("compensate c", None), ("compensate b", "B"), ("compensate a", None)]
    assert result.transaction.state == "reverted"
    assert states(result) == {"a": FAILED_COMPENSATED, "b": SUCCEEDED_COMPENSATED, "c": FAILED_COMPENSATED}
    assert [e.action for e in result.errors] == ["a", "c"]


async def test_failure_stops_the_run_before_later_steps(wf_name):
    """After a failure that is not ignored no later step is invoked."""
    ran = []
    a = create_step("a", lambda: 1 / 0)
    b = create_step("b", lambda: ran.append("b"))
    result = await create_workflow(wf_name, lambda inp: (a(), b())).run(throw_on_error=False)
    assert ran == []
    assert states(result)["b"] == NEVER_REACHED


async def test_skip_on_failure_step_is_compensated_when_a_later_step_fails(wf_name):
    """step1(skip->"step3") fails, step2 skipped, step3 fails: step3 then step1 (with None) are compensated."""
    log = []
    step1 = create_step({"name": "step1", "skip_on_permanent_failure": "step3"}, lambda: 1 / 0,
                        lambda ci: log.append(("compensate step1", ci)))
    step2 = create_step("step2", lambda: log.append("step2 ran"), lambda ci: log.append("compensate step2"))
    step3 = create_step("step3", lambda: StepResponse.permanent_failure("step3 fails"),
                        lambda ci: log.append(("compensate step3", ci)))
    result = await create_workflow(wf_name, lambda inp: (step1(), step2(), step3())).run(throw_on_error=False)
    assert log == [("compensate step3", None), ("compensate step1", None)]
    assert result.transaction.state == "reverted"
    assert states(result) == {"step1": FAILED_COMPENSATED, "step2": SKIPPED_ON_FAILURE, "step3": FAILED_COMPENSATED}
