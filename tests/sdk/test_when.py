"""when(...).then(...): branches, skipped steps, generated names, nesting, async conditions (SPEC §3.3)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stepwork import StepworkError, WorkflowResponse, create_step, create_workflow, parallelize, transform, when

from ._util import invoke_states


def _branch_workflow(name: str, calls: list[str]) -> Any:
    big = create_step("big", lambda value: calls.append("big") or f"big:{value}")
    small = create_step("small", lambda value: calls.append("small") or f"small:{value}")

    def composer(inp: Any) -> WorkflowResponse[Any]:
        r_big = when(inp, lambda v: v > 10).then(lambda: big(inp))
        r_small = when(inp, lambda v: v <= 10).then(lambda: small(inp))
        return WorkflowResponse({"big": r_big, "small": r_small})

    return create_workflow(name, composer)


async def test_true_condition_runs_the_branch(wf_name: str) -> None:
    """With a true condition the branch's step runs and the when value is its output."""
    calls: list[str] = []
    wf = _branch_workflow(wf_name, calls)

    result = await wf.run(50)

    assert calls == ["big"]
    assert result.result == {"big": "big:50", "small": None}
    assert invoke_states(result) == {"big": "done", "small": "skipped"}
    assert result.transaction.state == "done"


async def test_false_condition_skips_branch_steps_and_value_is_none(wf_name: str) -> None:
    """With a false condition the branch's steps end `skipped` and the when value is None."""
    calls: list[str] = []
    wf = _branch_workflow(wf_name, calls)

    result = await wf.run(3)

    assert calls == ["small"]
    assert result.result == {"big": None, "small": "small:3"}
    assert invoke_states(result) == {"big": "skipped", "small": "done"}


async def test_condition_receives_resolved_values(wf_name: str) -> None:
    """The condition is called with the resolved values (references replaced by runtime values)."""
    seen: list[Any] = []
    make = create_step("make", lambda _: {"status": "paid"})
    s = create_step("s", lambda _: "ran")

    def composer(inp: Any) -> Any:
        order = make()
        return when({"order": order, "flag": inp.flag, "lit": 1}, lambda v: seen.append(v) or True).then(
            lambda: s())

    wf = create_workflow(wf_name, composer)
    result = await wf.run({"flag": True})

    assert seen == [{"order": {"status": "paid"}, "flag": True, "lit": 1}]
    assert result.result == "ran"


async def test_all_steps_in_a_false_branch_are_skipped_and_later_steps_run(wf_name: str) -> None:
    """Every step created in a false branch is skipped; steps after the when run normally."""
    calls: list[str] = []
    a = create_step("a", lambda _: calls.append("a"))
    b = create_step("b", lambda _: calls.append("b"))
    after = create_step("after", lambda value: calls.append("after") or value)

    def composer(inp: Any) -> Any:
        def branch() -> None:
            a()
            b()

        when(inp, lambda v: False).then(branch)
        return after("x")

    wf = create_workflow(wf_name, composer)
    result = await wf.run(1)

    assert calls == ["after"]
    assert invoke_states(result) == {"a": "skipped", "b": "skipped", "after": "done"}
    assert result.result == "x"


async def test_named_when_returning_structure_creates_step_with_that_name(wf_name: str) -> None:
    """A named when whose branch returns a non-step value adds a step with that name echoing the value."""
    s = create_step("s", lambda _: 5)

    def composer(inp: Any) -> Any:
        return when("pick-branch", inp, lambda v: v).then(lambda: {"value": s(), "lit": "x"})

    wf = create_workflow(wf_name, composer)

    assert wf.step_names == ["s", "pick-branch"]
    assert (await wf.run(True)).result == {"value": 5, "lit": "x"}
    skipped = await wf.run(False)
    assert skipped.result is None
    assert invoke_states(skipped) == {"s": "skipped", "pick-branch": "skipped"}


async def test_unnamed_when_generated_names_are_deterministic(wf_name: str) -> None:
    """Unnamed whens get generated step names that are the same each time the composer is defined."""
    s = create_step("s", lambda _: 1)
    t = create_step("t", lambda _: 2)

    def composer(inp: Any) -> Any:
        first = when(inp, lambda v: v).then(lambda: {"s": s()})
        second = when(inp, lambda v: not v).then(lambda: [t()])
        return {"first": first, "second": second}

    one = create_workflow(f"{wf_name}-one", composer)
    two = create_workflow(f"{wf_name}-two", composer)

    assert one.step_names == two.step_names
    assert len(set(one.step_names)) == 4
    generated = [n for n in one.step_names if n not in ("s", "t")]
    assert len(generated) == 2
    assert one.definition == two.definition
    assert (await one.run(True)).result == {"first": {"s": 1}, "second": None}


async def test_same_workflow_redefined_with_unnamed_when_is_accepted(wf_name: str) -> None:
    """Defining the same name twice with an unnamed when is allowed: its generated names do not change."""
    s = create_step("s", lambda _: 1)

    def composer(inp: Any) -> Any:
        return when(inp, lambda v: v).then(lambda: {"s": s()})

    create_workflow(wf_name, composer)
    again = create_workflow(wf_name, composer)

    assert (await again.run(True)).result == {"s": 1}


async def test_nested_whens(wf_name: str) -> None:
    """A when inside a when: inner steps run only when both conditions hold."""
    calls: list[str] = []
    outer_step = create_step("outer_step", lambda _: calls.append("outer") or "outer")
    inner_step = create_step("inner_step", lambda _: calls.append("inner") or "inner")

    def composer(inp: Any) -> WorkflowResponse[Any]:
        results: dict[str, Any] = {}

        def outer() -> Any:
            results["inner"] = when(inp.b, lambda v: v).then(lambda: inner_step())
            return outer_step()

        results["outer"] = when(inp.a, lambda v: v).then(outer)
        return WorkflowResponse(results)

    wf = create_workflow(wf_name, composer)

    both = await wf.run({"a": True, "b": True})
    assert both.result == {"inner": "inner", "outer": "outer"}
    assert calls == ["inner", "outer"]

    calls.clear()
    only_outer = await wf.run({"a": True, "b": False})
    assert only_outer.result == {"inner": None, "outer": "outer"}
    assert invoke_states(only_outer) == {"inner_step": "skipped", "outer_step": "done"}
    assert calls == ["outer"]

    calls.clear()
    neither = await wf.run({"a": False, "b": True})
    assert neither.result == {"inner": None, "outer": None}
    assert invoke_states(neither) == {"inner_step": "skipped", "outer_step": "skipped"}
    assert calls == []


async def test_async_condition(wf_name: str) -> None:
    """An async condition is awaited; its result decides the branch."""

    async def is_vip(v: Any) -> bool:
        return bool(v["vip"])

    s = create_step("s", lambda _: "discount")

    wf = create_workflow(wf_name, lambda inp: when(inp, is_vip).then(lambda: s()))

    assert (await wf.run({"vip": True})).result == "discount"
    skipped = await wf.run({"vip": False})
    assert skipped.result is None
    assert invoke_states(skipped) == {"s": "skipped"}


async def test_branch_steps_share_one_decision(wf_name: str) -> None:
    """The condition is evaluated once per run: every step of the branch follows the same decision."""
    answers = iter([True, False, True, False])
    calls: list[str] = []
    a = create_step("a", lambda _: calls.append("a"))
    b = create_step("b", lambda _: calls.append("b"))

    def branch() -> None:
        a()
        b()

    wf = create_workflow(wf_name, lambda inp: when(inp, lambda v: next(answers)).then(branch))
    result = await wf.run(1)

    assert calls == ["a", "b"]
    assert invoke_states(result) == {"a": "done", "b": "done"}


async def test_parallel_branch_steps_share_one_async_decision(wf_name: str) -> None:
    """An async condition guarding a parallelize group runs once, so the group's steps agree on it."""
    calls = 0

    async def flip(v: Any) -> bool:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)  # a real async condition yields to the loop
        return calls == 1  # a second evaluation would disagree with the first

    a = create_step("a", lambda _: "a")
    b = create_step("b", lambda _: "b")

    wf = create_workflow(wf_name, lambda inp: when(inp, flip).then(lambda: list(parallelize(a(), b()))))
    result = await wf.run(1)

    assert calls == 1
    assert invoke_states(result)["a"] == invoke_states(result)["b"] == "done"
    assert result.result == ["a", "b"]


async def test_condition_on_transform(wf_name: str) -> None:
    """A condition may read a transform; the branch follows the transform's value."""
    s = create_step("s", lambda value: value)

    def composer(inp: Any) -> Any:
        total = transform(inp, lambda items: sum(items))
        return when(total, lambda t: t > 10).then(lambda: s(total))

    wf = create_workflow(wf_name, composer)

    assert (await wf.run([5, 6])).result == 11
    assert (await wf.run([1, 2])).result is None


async def test_raising_condition_fails_the_branch_step(wf_name: str) -> None:
    """A condition that raises fails the guarded step; earlier steps are compensated."""
    compensated: list[str] = []
    first = create_step("first", lambda _: 1, lambda _: compensated.append("first"))
    guarded = create_step("guarded", lambda _: "never")

    def bad(_: Any) -> bool:
        raise KeyError("missing")

    def composer(inp: Any) -> Any:
        first()
        return when(inp, bad).then(lambda: guarded())

    wf = create_workflow(wf_name, composer)
    result = await wf.run(1, throw_on_error=False)

    assert result.transaction.state == "reverted"
    assert invoke_states(result)["guarded"] == "failed"
    assert result.errors[0].action == "guarded"
    assert compensated == ["first"]


async def test_when_without_then_is_a_definition_error(wf_name: str) -> None:
    """when(...) without .then(...) raises StepworkError when the workflow is defined."""
    s = create_step("s", lambda _: 1)

    def composer(inp: Any) -> Any:
        when(inp, lambda v: v)
        return s()

    with pytest.raises(StepworkError) as info:
        create_workflow(wf_name, composer)

    assert info.value.type == "invalid_data"
    assert ".then" in info.value.message


@pytest.mark.parametrize("condition", [True, "yes", None, 1])
async def test_non_callable_condition_is_a_definition_error(wf_name: str, condition: Any) -> None:
    """A condition that is not callable raises StepworkError at definition time."""
    s = create_step("s", lambda _: 1)

    with pytest.raises(StepworkError) as info:
        create_workflow(wf_name, lambda inp: when(inp, condition).then(lambda: s()))

    assert info.value.type == "invalid_data"
    assert "condition" in info.value.message


async def test_when_outside_workflow_is_an_error() -> None:
    """when(...) outside a composer raises StepworkError."""
    with pytest.raises(StepworkError) as info:
        when({}, lambda v: v)

    assert "inside a workflow definition" in info.value.message
