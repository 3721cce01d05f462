"""Steps: create_step and @step, what invoke may return, and StepResponse (SPEC §1, §1.1)."""

from __future__ import annotations

from typing import Any

import pytest

from stepwork import (
    PermanentStepFailure,
    StepContext,
    StepResponse,
    StepworkError,
    WorkflowResponse,
    create_step,
    create_workflow,
    step,
)

from ._util import compensate_states, invoke_states, step_records


def _boom(_: Any = None) -> None:
    raise RuntimeError("boom")


async def test_create_step_function_form_runs_invoke_with_input_and_context(wf_name: str) -> None:
    """create_step(name, invoke) calls invoke(input, ctx) and its return value is the step output."""
    seen: list[tuple[Any, str]] = []

    def invoke(value: Any, ctx: StepContext) -> Any:
        seen.append((value, ctx.step_name))
        return value * 2

    double = create_step("double", invoke)
    wf = create_workflow(wf_name, lambda inp: double(inp))

    result = await wf.run(21)

    assert result.result == 42
    assert seen == [(21, "double")]


async def test_create_step_config_mapping_sets_name_and_options(wf_name: str) -> None:
    """create_step({"name": ..., "max_retries": 2}, fn) names the step and applies its options."""
    attempts: list[int] = []

    def flaky(_: Any, ctx: StepContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError("not yet")
        return "ok"

    s = create_step({"name": "flaky", "max_retries": 2}, flaky)
    wf = create_workflow(wf_name, lambda inp: s())

    result = await wf.run()

    assert result.result == "ok"
    assert attempts == [1, 2, 3]
    assert wf.step_names == ["flaky"]


async def test_config_mapping_without_name_uses_function_name(wf_name: str) -> None:
    """A config mapping without "name" takes the invoke function's own name."""

    def my_step_fn() -> int:
        return 1

    s = create_step({"max_retries": 1}, my_step_fn)
    wf = create_workflow(wf_name, lambda inp: s())

    assert wf.step_names == ["my_step_fn"]
    assert (await wf.run()).result == 1


async def test_step_decorator_with_name(wf_name: str) -> None:
    """@step("name") turns a function into a step with that name."""

    @step("greet")
    def greet(name: str, ctx: StepContext) -> str:
        return f"hello {name}"

    wf = create_workflow(wf_name, lambda inp: greet(inp))

    assert wf.step_names == ["greet"]
    assert (await wf.run("ann")).result == "hello ann"


async def test_step_decorator_with_config_mapping_applies_options(wf_name: str) -> None:
    """@step({"name": ..., "max_retries": 2}) applies the options (three attempts in all)."""
    attempts: list[int] = []

    @step({"name": "decorated", "max_retries": 2})
    def decorated(_: Any, ctx: StepContext) -> int:
        attempts.append(ctx.attempt)
        raise RuntimeError("always")

    wf = create_workflow(wf_name, lambda inp: decorated())

    result = await wf.run(throw_on_error=False)

    assert attempts == [1, 2, 3]
    assert result.transaction.state == "reverted"
    assert decorated.name == "decorated"
    assert decorated.options.max_retries == 2


async def test_step_decorator_without_argument_uses_function_name(wf_name: str) -> None:
    """@step() names the step after the decorated function."""

    @step()
    def reserve_stock() -> str:
        return "reserved"

    wf = create_workflow(wf_name, lambda inp: reserve_stock())

    assert wf.step_names == ["reserve_stock"]


async def test_compensate_decorator_registers_compensation(wf_name: str) -> None:
    """@that_step.compensate sets the compensation, which receives the step's output on rollback."""
    compensated: list[Any] = []

    @step("make")
    def make(_: Any) -> dict[str, int]:
        return {"id": 7}

    @make.compensate
    def undo_make(value: Any, ctx: StepContext) -> None:
        compensated.append((value, ctx.action))

    fail = create_step("fail", _boom)

    def composer(inp: Any) -> None:
        make()
        fail()

    wf = create_workflow(wf_name, composer)
    result = await wf.run(throw_on_error=False)

    assert compensated == [({"id": 7}, "compensate")]
    assert result.transaction.state == "reverted"
    assert make.compensate_function is undo_make


async def test_compensate_decorator_returns_the_function_unchanged() -> None:
    """@s.compensate returns the decorated function itself, so it stays callable as written."""

    @step("s")
    def s() -> None:
        return None

    def undo(value: Any) -> str:
        return "undone"

    assert s.compensate(undo) is undo
    assert undo(None) == "undone"


async def test_invoke_returning_step_response_sets_output(wf_name: str) -> None:
    """An invoke returning StepResponse(output) makes `output` the step's output."""
    s = create_step("s", lambda _, ctx: StepResponse({"a": 1}, "comp"))
    wf = create_workflow(wf_name, lambda inp: s())

    assert (await wf.run()).result == {"a": 1}


async def test_invoke_returning_plain_value_is_output_and_compensate_input(wf_name: str) -> None:
    """A plain return value is the step output and, on rollback, the compensation input."""
    received: list[Any] = []
    s = create_step("s", lambda _, ctx: [1, 2, 3], lambda comp, ctx: received.append(comp))
    after = create_step("after", lambda value, ctx: value)
    fail = create_step("fail", _boom)

    def composer(inp: Any) -> Any:
        out = s()
        after(out)
        fail()
        return out

    wf = create_workflow(wf_name, composer)
    result = await wf.run(throw_on_error=False)

    assert received == [[1, 2, 3]]
    assert step_records(result)["after"]["invoke"]["state"] == "done"


async def test_invoke_returning_none_gives_none_output(wf_name: str) -> None:
    """An invoke returning None leaves the step done with output None."""
    s = create_step("s", lambda _, ctx: None)
    seen: list[Any] = ["unset"]
    reader = create_step("reader", lambda value, ctx: seen.__setitem__(0, value))

    def composer(inp: Any) -> Any:
        out = s()
        reader(out)
        return out

    wf = create_workflow(wf_name, composer)
    result = await wf.run()

    assert result.result is None
    assert seen == [None]
    assert invoke_states(result) == {"s": "done", "reader": "done"}


async def test_async_invoke_and_compensate_are_awaited(wf_name: str) -> None:
    """Coroutine invoke and compensate functions are awaited like plain ones."""
    compensated: list[Any] = []

    async def invoke(value: Any, ctx: StepContext) -> StepResponse[int, str]:
        return StepResponse(value + 1, "undo-me")

    async def compensate(value: Any, ctx: StepContext) -> None:
        compensated.append(value)

    s = create_step("s", invoke, compensate)

    async def fail_async(_: Any) -> None:
        raise RuntimeError("async boom")

    fail = create_step("fail", fail_async)

    def composer(inp: Any) -> Any:
        out = s(inp)
        fail()
        return out

    ok_wf = create_workflow(wf_name, lambda inp: s(inp))
    assert (await ok_wf.run(1)).result == 2

    failing = create_workflow(f"{wf_name}-failing", composer)
    result = await failing.run(1, throw_on_error=False)

    assert compensated == ["undo-me"]
    assert result.transaction.state == "reverted"


async def test_functions_taking_zero_or_one_argument_are_accepted(wf_name: str) -> None:
    """Invoke and compensate functions may take fewer than (input, ctx): zero or one argument."""
    calls: list[Any] = []

    def zero() -> str:
        calls.append("zero")
        return "z"

    def one(value: Any) -> str:
        calls.append(("one", value))
        return value + "!"

    def comp_zero() -> None:
        calls.append("comp_zero")

    def comp_one(value: Any) -> None:
        calls.append(("comp_one", value))

    a = create_step("a", zero, comp_zero)
    b = create_step("b", one, comp_one)
    fail = create_step("fail", _boom)

    def composer(inp: Any) -> None:
        out = a()
        b(out)
        fail()

    wf = create_workflow(wf_name, composer)
    await wf.run(throw_on_error=False)

    assert calls == ["zero", ("one", "z"), ("comp_one", "z!"), "comp_zero"]


async def test_step_response_compensate_input_defaults_to_output() -> None:
    """StepResponse(output) uses the output as compensation input; an explicit one overrides it."""
    assert StepResponse({"x": 1}).compensate_input == {"x": 1}
    assert StepResponse({"x": 1}, "id-1").compensate_input == "id-1"
    assert StepResponse("out", None).compensate_input is None
    assert StepResponse().output is None
    assert StepResponse().compensate_input is None


async def test_compensation_receives_explicit_compensate_input(wf_name: str) -> None:
    """On rollback, the compensation receives StepResponse's compensate_input, not its output."""
    received: list[Any] = []
    s = create_step("s", lambda _: StepResponse({"big": "object"}, {"id": 5}), lambda comp: received.append(comp))
    fail = create_step("fail", _boom)

    def composer(inp: Any) -> None:
        s()
        fail()

    wf = create_workflow(wf_name, composer)
    await wf.run(throw_on_error=False)

    assert received == [{"id": 5}]


async def test_permanent_failure_gives_partial_compensate_input_and_skips_retries(wf_name: str) -> None:
    """StepResponse.permanent_failure: no retry despite max_retries; own compensation gets its input."""
    attempts: list[int] = []
    received: list[Any] = []
    earlier: list[Any] = []

    def invoke(_: Any, ctx: StepContext) -> Any:
        attempts.append(ctx.attempt)
        return StepResponse.permanent_failure("half done", {"created": [1, 2]})

    first = create_step("first", lambda _: "first-out", lambda comp: earlier.append(comp))
    s = create_step({"name": "partial", "max_retries": 3}, invoke, lambda comp: received.append(comp))

    def composer(inp: Any) -> None:
        first()
        s()

    wf = create_workflow(wf_name, composer)
    result = await wf.run(throw_on_error=False)

    assert attempts == [1]
    assert received == [{"created": [1, 2]}]
    assert earlier == ["first-out"]
    assert result.transaction.state == "reverted"
    assert invoke_states(result)["partial"] == "failed"
    assert result.errors[0].action == "partial"
    assert result.errors[0].error["message"] == "half done"
    assert result.errors[0].error["name"] == "PermanentStepFailure"


async def test_raised_permanent_failure_without_input_gives_none_to_compensation(wf_name: str) -> None:
    """Raising StepResponse.permanent_failure() (no input) fails at once; compensation gets None."""
    received: list[Any] = ["unset"]
    attempts: list[int] = []

    def invoke(_: Any, ctx: StepContext) -> None:
        attempts.append(ctx.attempt)
        StepResponse.permanent_failure()

    s = create_step({"name": "s", "max_retries": 2}, invoke, lambda comp: received.__setitem__(0, comp))
    wf = create_workflow(wf_name, lambda inp: s())

    with pytest.raises(PermanentStepFailure) as info:
        await wf.run()

    assert info.value.message == "Permanent failure"
    assert isinstance(info.value, StepworkError)
    assert attempts == [1]
    assert received == [None]


async def test_skip_marks_step_skipped_and_workflow_continues(wf_name: str) -> None:
    """StepResponse.skip(): state skipped, downstream sees None, the workflow goes on to `done`."""
    seen: list[Any] = ["unset"]
    skipper = create_step("skipper", lambda _: StepResponse.skip())
    reader = create_step("reader", lambda value: seen.__setitem__(0, value) or "read")

    def composer(inp: Any) -> WorkflowResponse[Any]:
        out = skipper()
        r = reader(out)
        return WorkflowResponse({"skipped": out, "reader": r})

    wf = create_workflow(wf_name, composer)
    result = await wf.run()

    assert result.transaction.state == "done"
    assert invoke_states(result) == {"skipper": "skipped", "reader": "done"}
    assert seen == [None]
    assert result.result == {"skipped": None, "reader": "read"}
    assert result.transaction.execution["hasSkippedSteps"] is True


async def test_skipped_step_is_never_compensated(wf_name: str) -> None:
    """A skipped step's compensation is not called when a later step fails."""
    compensated: list[str] = []
    first = create_step("first", lambda _: 1, lambda _: compensated.append("first"))
    skipper = create_step("skipper", lambda _: StepResponse.skip(), lambda _: compensated.append("skipper"))
    fail = create_step("fail", _boom)

    def composer(inp: Any) -> None:
        first()
        skipper()
        fail()

    wf = create_workflow(wf_name, composer)
    result = await wf.run(throw_on_error=False)

    assert compensated == ["first"]
    assert result.transaction.state == "reverted"
    comp = compensate_states(result)
    assert comp["skipper"] != "reverted"
    assert comp["first"] == "reverted"


async def test_async_skip_is_honoured(wf_name: str) -> None:
    """A coroutine invoke returning StepResponse.skip() also ends `skipped`."""

    async def skip_me(_: Any) -> StepResponse[None, None]:
        return StepResponse.skip()

    s = create_step("s", skip_me)
    wf = create_workflow(wf_name, lambda inp: s())
    result = await wf.run()

    assert invoke_states(result) == {"s": "skipped"}
    assert result.result is None


async def test_async_invoke_is_retried_per_max_retries(wf_name: str) -> None:
    """A coroutine invoke is retried like a plain one, with a 1-based attempt counter."""
    attempts: list[int] = []

    async def flaky(_: Any, ctx: StepContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError("not yet")
        return "ok"

    s = create_step({"name": "s", "max_retries": 2}, flaky)
    wf = create_workflow(wf_name, lambda inp: s())

    assert (await wf.run()).result == "ok"
    assert attempts == [1, 2, 3]


async def test_save_response_false_hides_output_from_later_steps(wf_name: str) -> None:
    """save_response=False: the step's output is not kept, so later steps and the result read None."""
    hidden = create_step({"name": "hidden", "save_response": False}, lambda _: 5)
    reader = create_step("reader", lambda value: value)

    def composer(inp: Any) -> Any:
        out = hidden()
        return {"read": reader(out), "direct": out}

    wf = create_workflow(wf_name, composer)

    assert (await wf.run()).result == {"read": None, "direct": None}


async def test_no_compensation_option_skips_the_compensation_function(wf_name: str) -> None:
    """no_compensation=True marks the step reverted without calling its compensation."""
    called: list[Any] = []
    s = create_step({"name": "s", "no_compensation": True}, lambda _: 1, lambda comp: called.append(comp))
    fail = create_step("fail", _boom)

    def composer(inp: Any) -> None:
        s()
        fail()

    wf = create_workflow(wf_name, composer)
    result = await wf.run(throw_on_error=False)

    assert called == []
    assert compensate_states(result)["s"] == "reverted"


async def test_second_compensation_for_a_step_is_an_error() -> None:
    """Setting a compensation on a step that already has one raises StepworkError naming the step."""
    s = create_step("has-comp", lambda _: 1, lambda _: None)

    with pytest.raises(StepworkError) as info:
        s.compensate(lambda _: None)

    assert "has-comp" in info.value.message
