"""transform(values, *fns): chaining, async functions, laziness, once per run, failures (SPEC §3.2)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stepwork import StepworkError, WorkflowResponse, create_step, create_workflow, parallelize, transform, when

from ._util import compensate_states, invoke_states


async def test_chained_functions_apply_in_order(wf_name: str) -> None:
    """transform(values, f, g, h) resolves values then applies f, g and h in order."""

    def composer(inp: Any) -> Any:
        return transform({"a": inp.a, "b": inp.b}, lambda v: v["a"] + v["b"], lambda n: n * 10,
                         lambda n: f"total={n}")

    wf = create_workflow(wf_name, composer)

    assert (await wf.run({"a": 1, "b": 2})).result == "total=30"


async def test_async_functions_are_awaited_in_a_chain(wf_name: str) -> None:
    """Coroutine functions are awaited, mixed with plain ones, each getting the previous result."""

    async def double(n: int) -> int:
        return n * 2

    async def as_text(n: int) -> str:
        return str(n)

    seen: list[Any] = []
    s = create_step("s", lambda value: seen.append(value))

    def composer(inp: Any) -> Any:
        t = transform(inp, double, lambda n: n + 1, as_text)
        s(t)
        return t

    wf = create_workflow(wf_name, composer)
    result = await wf.run(4)

    assert result.result == "9"
    assert seen == ["9"]


async def test_transform_of_step_output_feeds_a_later_step(wf_name: str) -> None:
    """A transform of a step's output is computed after that step and passed to the next one."""
    seen: list[Any] = []
    make = create_step("make", lambda _: {"price": 5, "qty": 3})
    use = create_step("use", lambda value: seen.append(value))

    def composer(inp: Any) -> None:
        order = make()
        use({"total": transform(order, lambda o: o["price"] * o["qty"])})

    wf = create_workflow(wf_name, composer)
    await wf.run()

    assert seen == [{"total": 15}]


async def test_evaluated_once_per_run_across_several_consumers(wf_name: str) -> None:
    """A transform used by two steps, another transform and the result runs once per run."""
    calls: list[Any] = []

    def compute(v: Any) -> dict[str, int]:
        calls.append(v)
        return {"n": v * 2}

    a = create_step("a", lambda value: value)
    b = create_step("b", lambda value: value)

    def composer(inp: Any) -> WorkflowResponse[Any]:
        t = transform(inp, compute)
        derived = transform(t, lambda x: x["n"] + 1)
        ra = a(t)
        rb = b({"inner": t.n, "derived": derived})
        return WorkflowResponse({"t": t, "a": ra, "b": rb})

    wf = create_workflow(wf_name, composer)

    first = await wf.run(3)
    assert calls == [3]
    assert first.result == {"t": {"n": 6}, "a": {"n": 6}, "b": {"inner": 6, "derived": 7}}

    await wf.run(5)
    assert calls == [3, 5]


async def test_async_transform_evaluated_once_per_run(wf_name: str) -> None:
    """An async transform consumed by several steps is awaited once per run."""
    calls = 0

    async def compute(v: Any) -> int:
        nonlocal calls
        calls += 1
        return v + 1

    a = create_step("a", lambda value: value)
    b = create_step("b", lambda value: value)

    def composer(inp: Any) -> Any:
        t = transform(inp, compute)
        a(t)
        b(t)
        return t

    wf = create_workflow(wf_name, composer)

    assert (await wf.run(1)).result == 2
    assert calls == 1


async def test_unused_transform_is_never_evaluated(wf_name: str) -> None:
    """A transform no step, condition or result consumes is never evaluated (lazy)."""
    calls: list[Any] = []
    s = create_step("s", lambda value: value)

    def composer(inp: Any) -> Any:
        transform(inp, lambda v: calls.append(v))
        return s(inp)

    wf = create_workflow(wf_name, composer)
    await wf.run(1)

    assert calls == []


async def test_transform_not_evaluated_when_consumer_is_skipped_by_when(wf_name: str) -> None:
    """A transform consumed only by a step inside a false `when` is never evaluated."""
    calls: list[Any] = []
    s = create_step("s", lambda value: value)

    def composer(inp: Any) -> Any:
        t = transform(inp, lambda v: calls.append(v) or v)
        return when(inp, lambda v: False).then(lambda: s(t))

    wf = create_workflow(wf_name, composer)
    result = await wf.run(1)

    assert calls == []
    assert invoke_states(result) == {"s": "skipped"}


async def test_transform_evaluated_when_first_needed_not_at_start(wf_name: str) -> None:
    """A transform reading a step's output is evaluated after that step ran, not when the run starts."""
    order: list[str] = []
    first = create_step("first", lambda _: order.append("first") or 1)
    second = create_step("second", lambda value: order.append("second"))

    def composer(inp: Any) -> None:
        out = first()
        second(transform(out, lambda v: order.append("transform") or v))

    wf = create_workflow(wf_name, composer)
    await wf.run()

    assert order == ["first", "transform", "second"]


async def test_raising_transform_fails_the_consuming_step(wf_name: str) -> None:
    """A transform that raises fails the step that consumes it; earlier steps are compensated."""
    compensated: list[str] = []
    err = ValueError("bad transform")

    def explode(_: Any) -> Any:
        raise err

    first = create_step("first", lambda _: 1, lambda _: compensated.append("first"))
    consumer = create_step("consumer", lambda value: compensated.append("consumer-invoked"))

    def composer(inp: Any) -> None:
        first()
        consumer(transform(inp, explode))

    wf = create_workflow(wf_name, composer)
    result = await wf.run(1, throw_on_error=False)

    assert result.transaction.state == "reverted"
    assert invoke_states(result) == {"first": "done", "consumer": "failed"}
    assert compensate_states(result)["first"] == "reverted"
    assert compensated == ["first"]
    assert result.errors[0].action == "consumer"
    assert result.errors[0].error["name"] == "ValueError"
    assert result.errors[0].error["message"] == "bad transform"

    with pytest.raises(ValueError) as info:
        await wf.run(1)
    assert info.value is err


async def test_transform_outside_workflow_is_an_error() -> None:
    """transform(...) outside a composer raises StepworkError saying it belongs in a workflow definition."""
    with pytest.raises(StepworkError) as info:
        transform({}, lambda v: v)

    assert info.value.type == "invalid_data"
    assert "inside a workflow definition" in info.value.message


async def test_transform_needs_callable_functions(wf_name: str) -> None:
    """transform(values) without functions, or with a non-callable, is a definition error."""
    with pytest.raises(StepworkError):
        create_workflow(wf_name, lambda inp: transform(inp))
    with pytest.raises(StepworkError):
        create_workflow(f"{wf_name}-2", lambda inp: transform(inp, 42))


async def test_async_transform_shared_by_parallel_steps_evaluated_once(wf_name: str) -> None:
    """An async transform read by two steps of one parallelize group is still evaluated once per run."""
    calls = 0

    async def compute(v: Any) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)  # a real async transform yields to the loop
        return v + 1

    a = create_step("a", lambda value: value)
    b = create_step("b", lambda value: value)

    def composer(inp: Any) -> Any:
        t = transform(inp, compute)
        return list(parallelize(a(t), b(t)))

    wf = create_workflow(wf_name, composer)
    result = await wf.run(1)

    assert result.result == [2, 2]
    assert calls == 1


async def test_transform_mutating_its_input_does_not_change_the_source(wf_name: str) -> None:
    """A transform function receives a copy: mutating it leaves the step output other consumers read intact."""
    seen: list[Any] = []
    source = create_step("source", lambda _: {"items": [1]})
    reader = create_step("reader", lambda value: seen.append(value))

    def mutate(v: Any) -> Any:
        v["items"].append(2)
        return v

    def composer(inp: Any) -> None:
        out = source()
        reader({"transformed": transform(out, mutate), "original": out})

    wf = create_workflow(wf_name, composer)
    await wf.run()

    assert seen == [{"transformed": {"items": [1, 2]}, "original": {"items": [1]}}]


async def test_transform_raising_in_result_is_reported(wf_name: str) -> None:
    """A transform failing while the result is resolved is listed in errors, or raised with throw_on_error."""
    err = ValueError("in result")

    def explode(_: Any) -> Any:
        raise err

    s = create_step("s", lambda _: 1)
    wf = create_workflow(wf_name, lambda inp: {"s": s(), "t": transform(inp, explode)})

    result = await wf.run(throw_on_error=False)
    assert result.result is None
    assert [(e.action, e.error["message"]) for e in result.errors] == [(None, "in result")]

    with pytest.raises(ValueError) as info:
        await wf.run()
    assert info.value is err
