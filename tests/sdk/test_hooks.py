"""Hooks: create_hook, handler registration, result validators, compensation (SPEC §3.5)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from stepwork import (
    StepContext,
    StepResponse,
    StepworkError,
    WorkflowResponse,
    create_hook,
    create_step,
    create_workflow,
    when,
)

from ._util import compensate_states, invoke_states


class Discount(BaseModel):
    code: str
    percent: int


def _hook_workflow(name: str, *, validator: Any = None, hook_name: str = "validate") -> Any:
    """A workflow: step `make` -> hook `hook_name` (values from make and input) -> result of the hook."""
    make = create_step("make", lambda value: {"order": value})

    def composer(inp: Any) -> WorkflowResponse[Any]:
        order = make(inp)
        hook = create_hook(hook_name, {"order": order, "extra": inp}, result_validator=validator)
        return WorkflowResponse({"order": order, "hook_result": hook.get_result()}, hooks=[hook])

    return create_workflow(name, composer)


async def test_hook_without_handler_returns_none_and_workflow_is_done(wf_name: str) -> None:
    """With no handler registered, get_result() resolves to None and the workflow ends done."""
    wf = _hook_workflow(wf_name)

    result = await wf.run(1)

    assert result.transaction.state == "done"
    assert result.result == {"order": {"order": 1}, "hook_result": None}
    assert invoke_states(result) == {"make": "done", "validate": "done", "get-validate-result": "done"}


async def test_handler_registered_by_attribute_receives_values_and_provides_result(wf_name: str) -> None:
    """wf.hooks.<name>(fn) registers a handler: it receives the resolved values; its output is the result."""
    wf = _hook_workflow(wf_name)
    seen: list[Any] = []

    def handler(values: Any, ctx: StepContext) -> dict[str, Any]:
        seen.append((values, ctx.step_name))
        return {"ok": True}

    wf.hooks.validate(handler)
    result = await wf.run(2)

    assert seen == [({"order": {"order": 2}, "extra": 2}, "validate")]
    assert result.result == {"order": {"order": 2}, "hook_result": {"ok": True}}


async def test_handler_registered_by_item(wf_name: str) -> None:
    """wf.hooks["name"](fn) registers a handler as the attribute form does; StepResponse works too."""
    wf = _hook_workflow(wf_name, hook_name="my-hook")
    wf.hooks["my-hook"](lambda values: StepResponse(values["extra"] * 10))

    result = await wf.run(3)

    assert result.result["hook_result"] == 30


async def test_async_handler_is_awaited(wf_name: str) -> None:
    """An async hook handler is awaited."""
    wf = _hook_workflow(wf_name)

    async def handler(values: Any) -> str:
        return "async-ok"

    wf.hooks.validate(handler)

    assert (await wf.run(1)).result["hook_result"] == "async-ok"


async def test_second_registration_is_an_error(wf_name: str) -> None:
    """Registering a second handler for one hook raises StepworkError naming the hook."""
    wf = _hook_workflow(wf_name)
    wf.hooks.validate(lambda values: 1)

    with pytest.raises(StepworkError) as info:
        wf.hooks["validate"](lambda values: 2)

    assert "validate" in info.value.message
    assert (await wf.run(1)).result["hook_result"] == 1


@pytest.mark.parametrize("handler", [None, 42, "fn"])
async def test_non_callable_handler_is_an_error(wf_name: str, handler: Any) -> None:
    """A non-callable handler raises StepworkError and leaves the hook unregistered."""
    wf = _hook_workflow(wf_name)

    with pytest.raises(StepworkError) as info:
        wf.hooks.validate(handler)

    assert info.value.type == "invalid_data"
    wf.hooks.validate(lambda values: "later")  # the failed registration did not take the slot
    assert (await wf.run(1)).result["hook_result"] == "later"


async def test_non_callable_hook_compensation_is_an_error(wf_name: str) -> None:
    """A non-callable hook compensation raises StepworkError."""
    wf = _hook_workflow(wf_name)

    with pytest.raises(StepworkError):
        wf.hooks.validate(lambda values: 1, 42)


async def test_unknown_hook_name_is_an_error_listing_hooks(wf_name: str) -> None:
    """Registering on an unknown hook name raises StepworkError that lists the workflow's hooks."""
    wf = _hook_workflow(wf_name, hook_name="known-hook")

    with pytest.raises(StepworkError) as info:
        wf.hooks.unknown(lambda values: 1)
    assert "unknown" in info.value.message
    assert "known-hook" in info.value.message

    with pytest.raises(StepworkError) as info2:
        wf.hooks["other"]
    assert "known-hook" in info2.value.message


async def test_pydantic_model_validator_accepts_valid_result(wf_name: str) -> None:
    """A pydantic model as result_validator turns a valid handler output into a model instance."""
    wf = _hook_workflow(wf_name, validator=Discount)
    wf.hooks.validate(lambda values: {"code": "X10", "percent": 10})

    result = await wf.run(1)

    hook_result = result.result["hook_result"]
    assert isinstance(hook_result, Discount)
    assert hook_result == Discount(code="X10", percent=10)


async def test_pydantic_model_validator_rejects_invalid_result_and_reverts(wf_name: str) -> None:
    """An invalid handler output fails step get-{name}-result and the workflow is reverted."""
    compensated: list[Any] = []
    wf = _hook_workflow(wf_name, validator=Discount)
    wf.hooks.validate(lambda values: {"code": "X10", "percent": "not a number"},
                      lambda comp: compensated.append(comp))

    result = await wf.run(1, throw_on_error=False)

    assert result.transaction.state == "reverted"
    assert invoke_states(result)["get-validate-result"] == "failed"
    assert result.errors[0].action == "get-validate-result"
    assert result.errors[0].error["name"] == "ValidationError"
    assert compensated == [{"code": "X10", "percent": "not a number"}]
    assert compensate_states(result)["make"] == "reverted"


async def test_callable_validator(wf_name: str) -> None:
    """A plain callable as result_validator maps the output; raising from it fails the result step."""

    def validator(value: Any) -> Any:
        if value < 0:
            raise ValueError("negative")
        return value * 2

    wf = _hook_workflow(wf_name, validator=validator)
    outputs = iter([5, -1])
    wf.hooks.validate(lambda values: next(outputs))

    assert (await wf.run(1)).result["hook_result"] == 10

    failed = await wf.run(1, throw_on_error=False)
    assert failed.transaction.state == "reverted"
    assert failed.errors[0].action == "get-validate-result"
    assert failed.errors[0].error["message"] == "negative"


async def test_object_with_parse_validator(wf_name: str) -> None:
    """An object with .parse(value) as result_validator is used through .parse."""

    class Schema:
        def __init__(self) -> None:
            self.calls: list[Any] = []

        def parse(self, value: Any) -> Any:
            self.calls.append(value)
            return {"parsed": value}

    schema = Schema()
    wf = _hook_workflow(wf_name, validator=schema)
    wf.hooks.validate(lambda values: "raw")

    result = await wf.run(1)

    assert schema.calls == ["raw"]
    assert result.result["hook_result"] == {"parsed": "raw"}


async def test_validator_is_not_called_without_handler(wf_name: str) -> None:
    """Without a handler the result is None and the validator is not called."""
    calls: list[Any] = []

    def validator(value: Any) -> Any:
        calls.append(value)
        return value

    wf = _hook_workflow(wf_name, validator=validator)
    result = await wf.run(1)

    assert result.result["hook_result"] is None
    assert calls == []


async def test_invalid_validator_is_a_definition_error(wf_name: str) -> None:
    """A result_validator that is neither a model, a callable nor has .parse is rejected at definition."""
    with pytest.raises(StepworkError):
        _hook_workflow(wf_name, validator=42)


async def test_throwing_handler_is_compensated_with_earlier_steps(wf_name: str) -> None:
    """A throwing handler fails the hook step: its compensation runs (input None), then earlier steps'."""
    events: list[Any] = []
    err = RuntimeError("handler failed")
    first = create_step("first", lambda _: "first-out", lambda comp: events.append(("first", comp)))

    def composer(inp: Any) -> Any:
        first()
        hook = create_hook("on-thing", inp)
        return hook.get_result()

    wf = create_workflow(wf_name, composer)

    def handler(values: Any) -> None:
        raise err

    wf.hooks["on-thing"](handler, lambda comp: events.append(("hook", comp)))

    with pytest.raises(RuntimeError) as info:
        await wf.run(1)
    assert info.value is err

    result = await wf.run(1, throw_on_error=False)
    assert result.transaction.state == "reverted"
    assert invoke_states(result)["on-thing"] == "failed"
    assert events[-2:] == [("hook", None), ("first", "first-out")]


async def test_hook_compensated_with_its_output_when_a_later_step_fails(wf_name: str) -> None:
    """A successful hook handler is compensated with its compensate input when a later step fails."""
    events: list[Any] = []

    def boom(_: Any) -> None:
        raise RuntimeError("later failure")

    later = create_step("later", boom)

    def composer(inp: Any) -> None:
        create_hook("h", inp)
        later()

    wf = create_workflow(wf_name, composer)
    wf.hooks.h(lambda values: StepResponse("out", {"undo": values}), lambda comp: events.append(comp))

    result = await wf.run(7, throw_on_error=False)

    assert result.transaction.state == "reverted"
    assert events == [{"undo": 7}]


async def test_hook_inside_false_when_is_skipped(wf_name: str) -> None:
    """A hook declared inside a false when is skipped: its handler is not called."""
    calls: list[Any] = []

    def composer(inp: Any) -> Any:
        return when(inp, lambda v: v).then(lambda: create_hook("cond-hook", inp).get_result())

    wf = create_workflow(wf_name, composer)
    wf.hooks["cond-hook"](lambda values: calls.append(values) or "handled")

    skipped = await wf.run(False)
    assert calls == []
    assert skipped.result is None
    assert invoke_states(skipped)["cond-hook"] == "skipped"

    ran = await wf.run(True)
    assert calls == [True]
    assert ran.result == "handled"


async def test_hooks_listing(wf_name: str) -> None:
    """wf.hooks lists the declared hook names and supports `in`."""

    def composer(inp: Any) -> None:
        create_hook("one", inp)
        create_hook("two", inp)

    wf = create_workflow(wf_name, composer)

    assert list(wf.hooks) == ["one", "two"]
    assert "one" in wf.hooks
    assert "three" not in wf.hooks


async def test_hook_name_with_colon_is_an_error(wf_name: str) -> None:
    """A hook name containing ':' (the idempotency key separator) is rejected, as for steps."""
    with pytest.raises(StepworkError) as info:
        create_workflow(wf_name, lambda inp: create_hook("on:thing", inp))

    assert "on:thing" in info.value.message


async def test_create_hook_outside_workflow_is_an_error() -> None:
    """create_hook(...) outside a composer raises StepworkError."""
    with pytest.raises(StepworkError) as info:
        create_hook("h", {})

    assert "inside a workflow definition" in info.value.message
