"""Definition time: composer rules, names, options and redefinition (SPEC §1, §1.2, §2, §8)."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from stepwork import (
    StepworkError,
    Workflow,
    WorkflowResponse,
    create_step,
    create_workflow,
    get_workflow,
    step,
    workflow,
)


def _definition_error(name: str, composer: Callable[..., Any]) -> StepworkError:
    with pytest.raises(StepworkError) as info:
        create_workflow(name, composer)
    return info.value


# -- the composer runs once, and plain Python on references is refused ----------------------------


async def test_composer_runs_once_at_definition_time(wf_name: str) -> None:
    """The composer runs once, when the workflow is defined, never per run."""
    calls: list[Any] = []
    s = create_step("s", lambda value: value)

    def composer(inp: Any) -> Any:
        calls.append("composed")
        return s(inp)

    wf = create_workflow(wf_name, composer)
    assert calls == ["composed"]

    await wf.run(1)
    await wf.run(2)
    assert calls == ["composed"]


async def test_composer_without_parameter_is_accepted(wf_name: str) -> None:
    """A composer taking no parameter is allowed."""
    s = create_step("s", lambda _: "no-input")

    wf = create_workflow(wf_name, lambda: s())

    assert (await wf.run()).result == "no-input"


async def test_workflow_decorator_form(wf_name: str) -> None:
    """@workflow(name) defines and registers the workflow from the decorated composer."""
    s = create_step("s", lambda value: value + 1)

    @workflow(wf_name)
    def my_workflow(inp: Any) -> WorkflowResponse[Any]:
        return WorkflowResponse(s(inp))

    assert isinstance(my_workflow, Workflow)
    assert my_workflow.name == wf_name
    assert get_workflow(wf_name) is my_workflow
    assert (await my_workflow.run(1)).result == 2


_OPERATIONS: list[tuple[str, Callable[[Any], Any]]] = [
    ("add", lambda r: r + 1),
    ("radd", lambda r: 1 + r),
    ("sub", lambda r: r - 1),
    ("mul", lambda r: r * 2),
    ("truediv", lambda r: r / 2),
    ("mod", lambda r: r % 2),
    ("neg", lambda r: -r),
    ("eq", lambda r: r == 1),
    ("ne", lambda r: r != 1),
    ("lt", lambda r: r < 1),
    ("ge", lambda r: r >= 1),
    ("if", lambda r: "yes" if r else "no"),
    ("not", lambda r: not r),
    ("bool", bool),
    ("and", lambda r: r and 1),
    ("iter", lambda r: [x for x in r]),  # noqa: C416 - iteration is the point
    ("unpack", lambda r: tuple(r)),
    ("len", len),
    ("in", lambda r: "x" in r),
    ("int", int),
    ("fstring", lambda r: f"{r}"),
    ("format", lambda r: format(r, "")),
    ("index", lambda r: [1, 2][r]),
    ("call", lambda r: r()),
    ("setattr", lambda r: setattr(r, "x", 1)),
    ("and_op", lambda r: operator.and_(r, 1)),
]


@pytest.mark.parametrize(("label", "operation"), _OPERATIONS, ids=[label for label, _ in _OPERATIONS])
async def test_python_operations_on_references_are_refused(wf_name: str, label: str,
                                                           operation: Callable[[Any], Any]) -> None:
    """Operators, `if`, comparisons, iteration, len() on a reference raise StepworkError naming transform/when."""
    s = create_step("s", lambda _: 1)

    def composer(inp: Any) -> Any:
        out = s()
        return operation(out)

    err = _definition_error(wf_name, composer)

    assert err.type == "invalid_data"
    assert "transform" in err.message
    assert "when" in err.message


async def test_operations_on_input_reference_are_refused_too(wf_name: str) -> None:
    """The workflow input reference (and paths on it) refuse Python operations as step references do."""
    err = _definition_error(wf_name, lambda inp: inp.total * 2)
    assert "transform" in err.message

    err2 = _definition_error(f"{wf_name}-2", lambda inp: "yes" if inp["flag"] else "no")
    assert "when" in err2.message


async def test_async_composer_is_an_error(wf_name: str) -> None:
    """An async def composer raises StepworkError: composers run synchronously at definition time."""

    async def composer(inp: Any) -> None:
        return None

    err = _definition_error(wf_name, composer)

    assert err.type == "invalid_data"
    assert "async" in err.message


async def test_non_callable_composer_is_an_error(wf_name: str) -> None:
    """A composer that is not callable raises StepworkError."""
    err = _definition_error(wf_name, 42)  # type: ignore[arg-type]

    assert err.type == "invalid_data"


async def test_failed_definition_does_not_register_or_leak_scope(wf_name: str) -> None:
    """A composer that raises registers nothing, and steps outside a composer still fail afterwards."""
    s = create_step("s", lambda _: 1)

    def composer(inp: Any) -> None:
        s()
        raise ValueError("composer bug")

    with pytest.raises(ValueError):
        create_workflow(wf_name, composer)

    with pytest.raises(StepworkError):
        get_workflow(wf_name)
    with pytest.raises(StepworkError) as info:
        s()
    assert "inside a workflow definition" in info.value.message


# -- step names -----------------------------------------------------------------------------------


async def test_duplicate_step_without_rename_is_an_error_naming_the_step(wf_name: str) -> None:
    """Calling one step twice without .config(name=...) raises StepworkError naming the step."""
    s = create_step("reserve-stock", lambda _: 1)

    def composer(inp: Any) -> None:
        s()
        s()

    err = _definition_error(wf_name, composer)

    assert err.type == "duplicate_error"
    assert "reserve-stock" in err.message


async def test_two_steps_with_the_same_name_are_an_error(wf_name: str) -> None:
    """Two different steps sharing a name in one workflow raise StepworkError naming it."""
    a = create_step("same", lambda _: 1)
    b = create_step("same", lambda _: 2)

    def composer(inp: Any) -> None:
        a()
        b()

    err = _definition_error(wf_name, composer)

    assert "same" in err.message


async def test_step_reused_with_rename(wf_name: str) -> None:
    """A step reused with .config(name=...) runs twice under two names."""
    s = create_step("s", lambda value: value * 10)

    def composer(inp: Any) -> WorkflowResponse[Any]:
        first = s(1)
        second = s(2).config(name="s-again")
        return WorkflowResponse([first, second])

    wf = create_workflow(wf_name, composer)

    assert wf.step_names == ["s", "s-again"]
    assert (await wf.run()).result == [10, 20]


async def test_names_checked_after_every_rename(wf_name: str) -> None:
    """Names are checked when the composer returns: a rename that frees a name makes the composition valid."""
    s = create_step("s", lambda value: value)

    def composer(inp: Any) -> Any:
        first = s(1)
        second = s(2)
        first.config(name="renamed-later")
        return [first, second]

    wf = create_workflow(wf_name, composer)

    assert wf.step_names == ["renamed-later", "s"]


async def test_rename_into_an_existing_name_is_an_error(wf_name: str) -> None:
    """Renaming a step to another step's name raises StepworkError naming it."""
    a = create_step("a", lambda _: 1)
    b = create_step("b", lambda _: 2)

    def composer(inp: Any) -> None:
        a()
        b().config(name="a")

    err = _definition_error(wf_name, composer)

    assert '"a"' in err.message


async def test_config_overrides_options_and_returns_same_reference(wf_name: str) -> None:
    """ref.config(**options) overrides options and returns the same reference."""
    attempts: list[int] = []

    def flaky(_: Any, ctx: Any) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("once")
        return "ok"

    s = create_step("s", flaky)
    refs: list[Any] = []

    def composer(inp: Any) -> Any:
        ref = s()
        refs.append(ref)
        configured = ref.config(max_retries=1)
        refs.append(configured)
        return configured

    wf = create_workflow(wf_name, composer)

    assert refs[0] is refs[1]
    assert (await wf.run()).result == "ok"
    assert attempts == [1, 2]
    assert s.options.max_retries == 0  # the step itself is unchanged


# -- steps used outside a workflow, and bad step definitions --------------------------------------


async def test_step_called_outside_workflow_is_an_error() -> None:
    """Calling a step outside a composer raises invalid_data saying it must be used inside a workflow definition."""
    s = create_step("lonely", lambda _: 1)

    with pytest.raises(StepworkError) as info:
        s({"x": 1})

    assert info.value.type == "invalid_data"
    assert "must be used inside a workflow definition" in info.value.message
    assert "lonely" in info.value.message


@pytest.mark.parametrize("invoke", [None, 42, "fn", {"a": 1}])
async def test_non_callable_invoke_is_an_error(invoke: Any) -> None:
    """create_step with a non-callable invoke raises StepworkError naming the step."""
    with pytest.raises(StepworkError) as info:
        create_step("bad-invoke", invoke)

    assert info.value.type == "invalid_data"
    assert "bad-invoke" in info.value.message


@pytest.mark.parametrize("compensate", [42, "fn", [1]])
async def test_non_callable_compensate_is_an_error(compensate: Any) -> None:
    """create_step with a non-callable compensation raises StepworkError naming the step."""
    with pytest.raises(StepworkError) as info:
        create_step("bad-comp", lambda _: 1, compensate)

    assert info.value.type == "invalid_data"
    assert "bad-comp" in info.value.message


async def test_non_callable_compensate_decorator_argument_is_an_error() -> None:
    """@s.compensate applied to a non-callable raises StepworkError."""
    s = create_step("s", lambda _: 1)

    with pytest.raises(StepworkError):
        s.compensate(42)  # type: ignore[arg-type]


async def test_bare_step_decorator_is_an_error() -> None:
    """@step without parentheses raises StepworkError telling how to write it."""
    with pytest.raises(StepworkError) as info:

        @step  # type: ignore[arg-type]
        def bare(_: Any) -> None:
            return None

    assert "@step(" in info.value.message


@pytest.mark.parametrize("bad", [42, None, ["name"]])
async def test_bad_step_name_or_config_is_an_error(bad: Any) -> None:
    """A step name that is neither a string nor a mapping is rejected."""
    with pytest.raises(StepworkError):
        create_step(bad, lambda _: 1)


@pytest.mark.parametrize("form", ["create_step-str", "create_step-mapping", "decorator", "config"])
async def test_step_name_with_colon_is_an_error(wf_name: str, form: str) -> None:
    """A step name containing ':' (the idempotency key separator) is rejected, however it is given."""
    with pytest.raises(StepworkError) as info:
        if form == "create_step-str":
            create_step("a:b", lambda _: 1)
        elif form == "create_step-mapping":
            create_step({"name": "a:b"}, lambda _: 1)
        elif form == "decorator":
            step("a:b")(lambda _: 1)
        else:
            s = create_step("s", lambda _: 1)
            create_workflow(wf_name, lambda inp: s().config(name="a:b"))

    assert "a:b" in info.value.message


@pytest.mark.parametrize("form", ["create_step-str", "create_step-mapping", "decorator"])
async def test_empty_step_name_is_an_error(form: str) -> None:
    """An empty step name is rejected by create_step and @step, as ref.config(name="") rejects it."""
    with pytest.raises(StepworkError):
        if form == "create_step-str":
            create_step("", lambda _: 1)
        elif form == "create_step-mapping":
            create_step({"name": ""}, lambda _: 1)
        else:
            step("")(lambda _: 1)


# -- step options ---------------------------------------------------------------------------------


async def test_unknown_step_option_names_it_and_suggests_the_right_one() -> None:
    """An unknown step option like max_retry raises StepworkError naming it and suggesting max_retries."""
    with pytest.raises(StepworkError) as info:
        create_step({"name": "s", "max_retry": 2}, lambda _: 1)

    assert info.value.type == "invalid_data"
    assert "max_retry" in info.value.message
    assert "max_retries" in info.value.message


async def test_unknown_step_option_in_config_is_an_error(wf_name: str) -> None:
    """An unknown option given to ref.config(...) raises StepworkError naming it."""
    s = create_step("s", lambda _: 1)

    err = _definition_error(wf_name, lambda inp: s().config(max_retry=1))

    assert "max_retry" in err.message
    assert "max_retries" in err.message


async def test_camel_case_step_option_suggests_snake_case() -> None:
    """A Medusa camelCase option (maxRetries) is refused with the snake_case name suggested."""
    with pytest.raises(StepworkError) as info:
        create_step({"name": "s", "maxRetries": 2}, lambda _: 1)

    assert "maxRetries" in info.value.message
    assert "max_retries" in info.value.message


@pytest.mark.parametrize(("option", "value"), [
    ("max_retries", -1),
    ("max_retries", 1.5),
    ("max_retries", True),
    ("timeout", 0),
    ("timeout", -3),
    ("timeout", "10"),
    ("retry_interval", -1),
    ("async", "yes"),
    ("async", 1),
    ("continue_on_permanent_failure", None),
    ("save_response", "false"),
    ("skip_on_permanent_failure", 3),
])
async def test_invalid_step_option_values_are_errors(option: str, value: Any) -> None:
    """Invalid values (negative max_retries, timeout 0, non-bool async...) raise StepworkError naming the option."""
    with pytest.raises(StepworkError) as info:
        create_step({"name": "s", option: value}, lambda _: 1)

    assert info.value.type == "invalid_data"
    assert option in info.value.message


async def test_invalid_option_value_in_config_is_an_error(wf_name: str) -> None:
    """ref.config(...) with an invalid value raises StepworkError."""
    s = create_step("s", lambda _: 1)

    err = _definition_error(wf_name, lambda inp: s().config(max_retries=-2))

    assert "max_retries" in err.message


async def test_valid_step_options_are_accepted() -> None:
    """Every documented step option with a valid value is accepted."""
    s = create_step({
        "name": "all-options", "max_retries": 2, "retry_interval": 0, "auto_retry": True, "timeout": 1.5,
        "async": False, "compensate_async": False, "background_execution": False,
        "retry_interval_awaiting": 2, "max_awaiting_retries": 3, "continue_on_permanent_failure": False,
        "skip_on_permanent_failure": False, "no_compensation": False, "save_response": True, "thread": False,
    }, lambda _: 1)

    assert s.options.max_retries == 2
    assert s.options.timeout == 1.5


async def test_skip_on_permanent_failure_target_must_be_a_later_step(wf_name: str) -> None:
    """skip_on_permanent_failure naming no later step raises StepworkError naming the target."""
    a = create_step({"name": "a", "skip_on_permanent_failure": "nowhere"}, lambda _: 1)

    err = _definition_error(wf_name, lambda inp: a())

    assert "nowhere" in err.message


# -- workflow options -----------------------------------------------------------------------------


async def test_unknown_workflow_option_is_an_error(wf_name: str) -> None:
    """An unknown workflow option raises StepworkError naming it (and suggesting a close one)."""
    with pytest.raises(StepworkError) as info:
        create_workflow({"name": wf_name, "retention": 10}, lambda inp: None)

    assert info.value.type == "invalid_data"
    assert "retention" in info.value.message
    assert "retention_time" in info.value.message


@pytest.mark.parametrize(("option", "value"), [
    ("timeout", 0),
    ("timeout", -1),
    ("retention_time", -5),
    ("store", "yes"),
    ("idempotent", 1),
    ("schedule", 5),
])
async def test_invalid_workflow_option_values_are_errors(wf_name: str, option: str, value: Any) -> None:
    """Invalid workflow option values raise StepworkError naming the option."""
    with pytest.raises(StepworkError) as info:
        create_workflow({"name": wf_name, option: value}, lambda inp: None)

    assert info.value.type == "invalid_data"
    assert option in info.value.message


@pytest.mark.parametrize("bad", [None, 42, "", {"store": True}, {"name": ""}])
async def test_bad_workflow_name_or_config_is_an_error(bad: Any) -> None:
    """A workflow needs a non-empty name, as a string or in a mapping."""
    with pytest.raises(StepworkError):
        create_workflow(bad, lambda inp: None)


async def test_valid_workflow_options_are_accepted(wf_name: str) -> None:
    """Documented workflow options are accepted; retention_time takes seconds or a timedelta."""
    wf = create_workflow({"name": wf_name, "store": True, "retention_time": timedelta(minutes=1),
                          "idempotent": False, "timeout": 30}, lambda inp: None)

    assert wf.options.retention_time == 60
    assert wf.options.timeout == 30


# -- redefinition ---------------------------------------------------------------------------------


async def test_redefining_with_identical_graph_is_allowed(wf_name: str) -> None:
    """Defining a workflow name again with an identical step graph is allowed and registers the new one."""
    a = create_step("a", lambda _: "old")
    a_new = create_step("a", lambda _: "new")

    create_workflow(wf_name, lambda inp: a())
    again = create_workflow(wf_name, lambda inp: a_new())

    assert get_workflow(wf_name) is again
    assert (await again.run()).result == "new"


async def test_redefining_with_different_graph_is_an_error(wf_name: str) -> None:
    """Defining a workflow name again with a different step graph raises StepworkError; the first stays."""
    a = create_step("a", lambda _: 1)
    b = create_step("b", lambda _: 2)

    first = create_workflow(wf_name, lambda inp: a())
    err = _definition_error(wf_name, lambda inp: b())

    assert wf_name in err.message
    assert get_workflow(wf_name) is first


async def test_redefining_with_different_step_options_is_an_error(wf_name: str) -> None:
    """A redefinition whose steps differ only in options is a different graph: StepworkError."""
    a = create_step("a", lambda _: 1)

    create_workflow(wf_name, lambda inp: a())
    _definition_error(wf_name, lambda inp: a().config(max_retries=3))


async def test_definition_is_json_tree_of_steps(wf_name: str) -> None:
    """wf.definition is a JSON-serializable tree of the steps, in order, with their options."""
    a = create_step("a", lambda _: 1)
    b = create_step({"name": "b", "max_retries": 2}, lambda _: 2, lambda _: None)

    def composer(inp: Any) -> None:
        a()
        b()

    wf = create_workflow(wf_name, composer)
    tree = json.loads(json.dumps(wf.definition))

    assert tree["next"]["action"] == "a"
    assert tree["next"]["noCompensation"] is True
    assert tree["next"]["next"]["action"] == "b"
    assert tree["next"]["next"]["maxRetries"] == 2
    assert tree["next"]["next"]["noCompensation"] is False
