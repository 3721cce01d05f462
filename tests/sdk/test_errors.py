"""Run-time errors: robust recording, throw_on_error, compensation failures (SPEC §2.1, §4, §8)."""

from __future__ import annotations

from typing import Any

import pytest

from stepwork import StepContext, StepworkError, create_step, create_workflow

from ._util import compensate_states, invoke_states


class StrRaises(Exception):
    """An exception whose __str__ itself raises."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")


class NeedsArgs(Exception):
    """An exception whose __init__ requires two arguments (cannot be rebuilt from its args)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def _failing_workflow(name: str, error: BaseException, compensated: list[str]) -> Any:
    first = create_step("first", lambda _: "first", lambda _: compensated.append("first"))

    def raise_it(_: Any) -> None:
        raise error

    fail = create_step("fail", raise_it)

    def composer(inp: Any) -> None:
        first()
        fail()

    return create_workflow(name, composer)


def _assert_record(record: dict[str, Any], name: str) -> None:
    assert record["name"] == name
    assert isinstance(record["message"], str)
    assert isinstance(record["stack"], str)
    assert record["stack"]


@pytest.mark.parametrize("make_error", [lambda: StrRaises("hidden"), lambda: NeedsArgs("E42", "broken")],
                         ids=["str-raises", "init-needs-args"])
async def test_awkward_exceptions_are_recorded_without_crashing(wf_name: str, make_error: Any) -> None:
    """Exceptions whose __str__ raises or whose __init__ needs arguments are recorded; the run reverts."""
    error = make_error()
    compensated: list[str] = []
    wf = _failing_workflow(wf_name, error, compensated)

    result = await wf.run(throw_on_error=False)

    assert result.transaction.state == "reverted"
    assert compensated == ["first"]
    assert len(result.errors) == 1
    failure = result.errors[0]
    assert failure.action == "fail"
    assert failure.handler_type == "invoke"
    _assert_record(failure.error, type(error).__name__)
    stored = result.transaction.context["errors"]
    assert stored[0]["action"] == "fail"
    _assert_record(stored[0]["error"], type(error).__name__)
    assert result.transaction.execution["state"] == "reverted"


async def test_exception_with_required_init_args_keeps_its_message(wf_name: str) -> None:
    """The recorded message of an exception with a custom __init__ is its str()."""
    wf = _failing_workflow(wf_name, NeedsArgs("E42", "broken"), [])

    result = await wf.run(throw_on_error=False)

    assert result.errors[0].error["message"] == "E42: broken"


@pytest.mark.parametrize("make_error", [lambda: ValueError("plain"), lambda: StrRaises(),
                                        lambda: NeedsArgs("E1", "x")],
                         ids=["value-error", "str-raises", "init-needs-args"])
async def test_throw_on_error_raises_the_original_exception_object(wf_name: str, make_error: Any) -> None:
    """throw_on_error=True (the default) raises the very exception object the step raised."""
    error = make_error()
    wf = _failing_workflow(wf_name, error, [])

    with pytest.raises(type(error)) as info:
        await wf.run()

    assert info.value is error


async def test_throw_on_error_false_returns_errors(wf_name: str) -> None:
    """throw_on_error=False returns the result with its errors instead of raising."""
    compensated: list[str] = []
    wf = _failing_workflow(wf_name, ValueError("nope"), compensated)

    result = await wf.run(throw_on_error=False)

    assert result.transaction.state == "reverted"
    assert [(e.action, e.handler_type, e.error["message"]) for e in result.errors] == [("fail", "invoke", "nope")]
    assert result.acknowledgement.has_finished is True
    assert result.acknowledgement.has_failed is True


async def test_stepwork_error_record_carries_its_type(wf_name: str) -> None:
    """A StepworkError raised by a step is recorded with its `type`."""
    wf = _failing_workflow(wf_name, StepworkError(StepworkError.Types.NOT_ALLOWED, "refused"), [])

    result = await wf.run(throw_on_error=False)

    assert result.errors[0].error["type"] == "not_allowed"
    assert result.errors[0].error["name"] == "StepworkError"
    assert result.errors[0].error["message"] == "refused"


async def test_one_error_per_permanent_failure_not_per_attempt(wf_name: str) -> None:
    """A step failing on every attempt records one error, after max_retries + 1 attempts."""
    attempts: list[int] = []

    def always(_: Any, ctx: StepContext) -> None:
        attempts.append(ctx.attempt)
        raise RuntimeError(f"attempt {ctx.attempt}")

    s = create_step({"name": "s", "max_retries": 2}, always)
    wf = create_workflow(wf_name, lambda inp: s())

    result = await wf.run(throw_on_error=False)

    assert attempts == [1, 2, 3]
    assert len(result.errors) == 1
    assert result.errors[0].error["message"] == "attempt 3"
    assert result.transaction.execution["steps"]["_root.s"]["attempts"] == 3


async def test_first_retry_success_records_no_error(wf_name: str) -> None:
    """A step that fails then succeeds on retry leaves no error and the run is done."""

    def flaky(_: Any, ctx: StepContext) -> str:
        if ctx.attempt == 1:
            raise RuntimeError("transient")
        return "ok"

    s = create_step({"name": "s", "max_retries": 1}, flaky)
    wf = create_workflow(wf_name, lambda inp: s())

    result = await wf.run()

    assert result.result == "ok"
    assert result.errors == []
    assert result.transaction.state == "done"


async def test_compensation_failure_ends_failed_and_other_compensations_still_run(wf_name: str) -> None:
    """A compensation failing after its retries ends the run `failed`; the other compensations still run."""
    events: list[str] = []
    invoke_error = RuntimeError("invoke failure")
    comp_error = StrRaises()

    def bad_comp(_: Any) -> None:
        events.append("bad-comp")
        raise comp_error

    def fail_invoke(_: Any) -> None:
        raise invoke_error

    first = create_step("first", lambda _: 1, lambda _: events.append("undo-first"))
    middle = create_step("middle", lambda _: 2, bad_comp)
    last = create_step("last", fail_invoke)

    def composer(inp: Any) -> None:
        first()
        middle()
        last()

    wf = create_workflow(wf_name, composer)
    result = await wf.run(throw_on_error=False)

    assert result.transaction.state == "failed"
    assert events == ["bad-comp", "undo-first"]
    assert compensate_states(result) == {"first": "reverted", "middle": "failed", "last": "reverted"}
    assert [e.action for e in result.errors] == ["last"]
    stored = result.transaction.context["errors"]
    assert [(e["action"], e["handler_type"]) for e in stored] == [("last", "invoke"), ("middle", "compensate")]
    _assert_record(stored[1]["error"], "StrRaises")

    with pytest.raises(RuntimeError) as info:
        await wf.run()
    assert info.value is invoke_error


async def test_compensation_retries_with_max_retries(wf_name: str) -> None:
    """max_retries applies to the compensation too: a compensation failing once is retried and succeeds."""
    comp_attempts: list[int] = []

    def comp(_: Any, ctx: StepContext) -> None:
        comp_attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("comp transient")

    def fail(_: Any) -> None:
        raise RuntimeError("invoke failure")

    s = create_step({"name": "s", "max_retries": 1}, lambda _: 1, comp)
    f = create_step("f", fail)

    def composer(inp: Any) -> None:
        s()
        f()

    wf = create_workflow(wf_name, composer)
    result = await wf.run(throw_on_error=False)

    assert comp_attempts == [1, 2]
    assert result.transaction.state == "reverted"


async def test_continue_on_permanent_failure_run_is_done_and_never_raises(wf_name: str) -> None:
    """A run that ends `done` thanks to continue_on_permanent_failure never raises, yet lists the error."""
    ran: list[str] = []

    def fail(_: Any) -> None:
        raise RuntimeError("ignored failure")

    f = create_step({"name": "f", "continue_on_permanent_failure": True}, fail)
    after = create_step("after", lambda value: ran.append("after") or value)

    def composer(inp: Any) -> Any:
        out = f()
        return after({"from_failed": out})

    wf = create_workflow(wf_name, composer)
    result = await wf.run()  # throw_on_error defaults to True

    assert result.transaction.state == "done"
    assert ran == ["after"]
    assert result.result == {"from_failed": None}
    assert [e.action for e in result.errors] == ["f"]
    assert invoke_states(result) == {"f": "failed", "after": "done"}
    assert result.acknowledgement.has_failed is False
    assert result.transaction.execution["hasFailedSteps"] is True


async def test_failed_step_output_reads_as_none_in_result(wf_name: str) -> None:
    """On a reverted run the result is still resolved; outputs of steps that did not finish are None."""
    first = create_step("first", lambda _: "first-out")

    def fail(_: Any) -> None:
        raise RuntimeError("x")

    f = create_step("f", fail)

    def composer(inp: Any) -> Any:
        return {"first": first(), "failed": f()}

    wf = create_workflow(wf_name, composer)
    result = await wf.run(throw_on_error=False)

    assert result.result == {"first": "first-out", "failed": None}
