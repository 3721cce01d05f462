"""Composition on every path: sequences, references, transform, when, parallelize, hooks, nested workflows."""

from __future__ import annotations

import asyncio
from typing import Any

from stepwork import (
    StepContext,
    StepResponse,
    WorkflowResponse,
    create_hook,
    create_step,
    create_workflow,
    parallelize,
    transform,
    when,
)

from .conftest import ExecutionPath, invoke_outputs, states, step_records

SUCCEEDED = ("done", "ok", "dormant", "idle")
SKIPPED = ("skipped", "ok", "dormant", "idle")
_GUARD = 2.0  # a guard against a sequential implementation hanging, not a wait


async def test_sequence_and_paths_into_outputs(path: ExecutionPath, wf_name: str) -> None:
    """Steps run in order; `ref.a.b`, `ref["k"][0]`, missing keys (None) and `ref["config"]` resolve."""
    order: list[str] = []

    def make_user(data: Any, ctx: StepContext) -> dict[str, Any]:
        order.append(ctx.step_name)
        return {"profile": {"name": data["name"], "langs": ["py", "ts"]}, "config": {"v": 1}}

    def greet(data: Any, ctx: StepContext) -> str:
        order.append(ctx.step_name)
        return f"hello {data['name']} ({data['lang']})"

    make = create_step("make-user", make_user)
    hello = create_step("greet", greet)

    def composer(inp: Any) -> Any:
        user = make({"name": inp.user.name})
        text = hello({"name": user.profile.name, "lang": user.profile["langs"][0]})
        return {"text": text, "missing": user.nope.deeper, "config": user["config"], "id": inp.id,
                "literal": [1, {"x": None}]}

    wf = path.workflow(wf_name, composer)
    result = await path.run(wf, {"id": 7, "user": {"name": "Ada"}})

    assert order == ["make-user", "greet"]
    assert result.result == {"text": "hello Ada (py)", "missing": None, "config": {"v": 1}, "id": 7,
                             "literal": [1, {"x": None}]}
    assert result.transaction.state == "done"
    assert states(result) == {"make-user": SUCCEEDED, "greet": SUCCEEDED}
    assert invoke_outputs(result) == {
        "make-user": {"profile": {"name": "Ada", "langs": ["py", "ts"]}, "config": {"v": 1}},
        "greet": "hello Ada (py)"}
    assert result.transaction.context["data"]["payload"] == {"id": 7, "user": {"name": "Ada"}}


async def test_mutating_a_step_input_does_not_leak(path: ExecutionPath, wf_name: str) -> None:
    """A step receives a copy of its input: mutating it changes neither another step's input nor the result."""
    mutate = create_step("mutate", lambda v: v["items"].append("mutated") or "m")
    read = create_step("read", lambda v: list(v["items"]))
    make = create_step("make", lambda _: {"items": ["a"]})

    def composer(inp: Any) -> Any:
        made = make()
        mutate(made)
        return {"read": read(made), "made": made}

    result = await path.run(path.workflow(wf_name, composer))
    assert result.result == {"read": ["a"], "made": {"items": ["a"]}}


async def test_transform_runs_once_per_run(path: ExecutionPath, wf_name: str) -> None:
    """A transform consumed by two steps and a condition runs once per run; a chain applies in order."""
    calls: list[Any] = []

    async def total(values: dict[str, Any]) -> int:
        calls.append(values)
        return sum(values["prices"]) * values["qty"]

    record = create_step("record", lambda v: v)
    label = create_step("label", lambda v: v)
    flagged = create_step("flagged", lambda v: f"big order {v}")

    def composer(inp: Any) -> Any:
        amount = transform({"prices": inp.prices, "qty": inp.qty}, total)
        text = transform(amount, lambda a: a + 1, lambda a: f"{a} EUR")
        big = when(amount, lambda a: a > 10).then(lambda: flagged(amount))
        return {"recorded": record({"amount": amount}), "label": label(text), "big": big}

    wf = path.workflow(wf_name, composer)
    first = await path.run(wf, {"prices": [2, 3], "qty": 3})
    assert first.result == {"recorded": {"amount": 15}, "label": "16 EUR", "big": "big order 15"}
    assert calls == [{"prices": [2, 3], "qty": 3}]
    second = await path.run(wf, {"prices": [1], "qty": 2})
    assert second.result == {"recorded": {"amount": 2}, "label": "3 EUR", "big": None}
    assert calls == [{"prices": [2, 3], "qty": 3}, {"prices": [1], "qty": 2}]


async def test_transform_in_the_result_runs_once_per_run(path: ExecutionPath, wf_name: str) -> None:
    """A transform read by a step and by the result runs once per run, after its inputs exist."""
    calls: list[Any] = []

    def total(values: dict[str, Any]) -> Any:
        calls.append(values)
        return None if values["prices"] is None else sum(values["prices"])

    record = create_step("record", lambda v: v)

    def composer(inp: Any) -> Any:
        amount = transform({"prices": inp.prices}, total)
        return {"recorded": record(amount), "amount": amount}

    result = await path.run(path.workflow(wf_name, composer), {"prices": [2, 3]})
    assert result.result == {"recorded": 5, "amount": 5}
    assert calls == [{"prices": [2, 3]}]


async def test_raising_transform_or_condition_fails_the_consuming_step(path: ExecutionPath, wf_name: str) -> None:
    """A transform (or a `when` condition) that raises fails the step that needs it; earlier steps revert."""
    compensated: list[str] = []
    error = ValueError("bad transform")

    def explode(_: Any) -> Any:
        raise error

    def bad_condition(_: Any) -> bool:
        raise KeyError("missing")

    first = create_step("first", lambda v: 1, lambda c: compensated.append("first"))
    consumer = create_step("consumer", lambda v: compensated.append("consumer invoked"))
    guarded = create_step("guarded", lambda v: "never")

    def composer(inp: Any) -> Any:
        first(inp)
        when(inp.cond, lambda c: c).then(lambda: consumer(transform(inp, explode)))
        return when(inp, bad_condition).then(lambda: guarded(inp))

    wf = path.workflow(wf_name, composer)
    result = await path.run(wf, {"cond": True}, throw_on_error=False)
    assert result.transaction.state == "reverted"
    assert {n: s[0] for n, s in states(result).items()} == {"first": "done", "consumer": "failed",
                                                          "guarded": "not_started"}
    assert compensated == ["first"]
    assert [(e.action, e.error["name"], e.error["message"]) for e in result.errors] == [
        ("consumer", "ValueError", "bad transform")]
    try:
        await path.run(wf, {"cond": True})
    except Exception as raised:  # noqa: BLE001 - compared below
        path.check_raised(raised, error)
    else:
        raise AssertionError("the run did not raise")

    compensated.clear()
    result = await path.run(wf, {"cond": False}, throw_on_error=False)
    assert result.transaction.state == "reverted"
    assert {n: s[0] for n, s in states(result).items()} == {"first": "done", "consumer": "skipped",
                                                          "guarded": "failed"}
    assert [(e.action, e.error["name"]) for e in result.errors] == [("guarded", "KeyError")]
    assert compensated == ["first"]


async def test_raising_transform_in_the_result_is_reported(path: ExecutionPath, wf_name: str) -> None:
    """A transform failing while the result is resolved: in errors (action None), the state stays done; with
    throw_on_error it is raised."""
    calls: list[Any] = []
    error = ValueError("in result")

    def explode(value: Any) -> Any:
        calls.append(value)
        raise error

    s = create_step("s", lambda v: 1)
    wf = path.workflow(wf_name, lambda inp: {"s": s(inp), "t": transform(inp, explode)})

    result = await path.run(wf, 5, throw_on_error=False)
    assert result.result is None
    assert result.transaction.state == "done"
    assert [(e.action, e.error["message"]) for e in result.errors] == [(None, "in result")]
    assert calls == [5]
    try:
        await path.run(wf, 5)
    except Exception as raised:  # noqa: BLE001 - compared below
        path.check_raised(raised, error)
    else:
        raise AssertionError("the run did not raise")


async def test_a_failed_run_raises_its_steps_error_not_the_result_transforms(path: ExecutionPath,
                                                                              wf_name: str) -> None:
    """A step fails; the result's transform then trips over the output the step never produced. The run
    raises the step's error (Medusa throws errors[0]); the transform's error is only appended to errors."""
    cause = LookupError("no such brand")

    def find(value: Any) -> Any:
        raise cause

    found = create_step("find", find)
    wf = path.workflow(wf_name, lambda inp: transform(found(inp), lambda r: r["data"][0]))

    result = await path.run(wf, 1, throw_on_error=False)
    assert result.transaction.state == "reverted"
    assert [(e.action, e.error["name"]) for e in result.errors] == [("find", "LookupError"), (None, "TypeError")]
    try:
        await path.run(wf, 1)
    except Exception as raised:  # noqa: BLE001 - compared below
        path.check_raised(raised, cause)
    else:
        raise AssertionError("the run did not raise")


async def test_when_then_both_branches(path: ExecutionPath, wf_name: str) -> None:
    """A true `when` runs its steps; a false one skips them (value None); a named `when` with a structure."""
    calls: list[str] = []
    big = create_step("big", lambda v: calls.append("big") or f"big:{v}")
    small = create_step("small", lambda v: calls.append("small") or f"small:{v}")
    bonus = create_step("bonus", lambda v: calls.append("bonus") or v * 10)
    after = create_step("after", lambda v: calls.append("after") or v)

    def composer(inp: Any) -> WorkflowResponse[Any]:
        r_big = when(inp.n, lambda n: n > 10).then(lambda: big(inp.n))
        r_small = when(inp.n, lambda n: n <= 10).then(lambda: small(inp.n))
        r_vip = when("vip-bonus", inp, lambda i: i["vip"]).then(lambda: {"points": bonus(inp.n), "note": "vip"})
        return WorkflowResponse({"big": r_big, "small": r_small, "vip": r_vip, "after": after({"n": inp.n})})

    wf = path.workflow(wf_name, composer)
    high = await path.run(wf, {"n": 50, "vip": True})
    assert calls == ["big", "bonus", "after"]
    assert high.result == {"big": "big:50", "small": None, "vip": {"points": 500, "note": "vip"},
                           "after": {"n": 50}}
    assert states(high) == {"big": SUCCEEDED, "small": SKIPPED, "bonus": SUCCEEDED, "vip-bonus": SUCCEEDED,
                            "after": SUCCEEDED}

    calls.clear()
    low = await path.run(wf, {"n": 3, "vip": False})
    assert calls == ["small", "after"]
    assert low.result == {"big": None, "small": "small:3", "vip": None, "after": {"n": 3}}
    assert states(low) == {"big": SKIPPED, "small": SUCCEEDED, "bonus": SKIPPED, "vip-bonus": SKIPPED,
                           "after": SUCCEEDED}
    assert low.transaction.state == "done"
    assert low.transaction.execution["hasSkippedSteps"] is True


async def test_parallelize_results_and_concurrency(path: ExecutionPath, wf_name: str) -> None:
    """Group members run concurrently, references come back in argument order, the next step waits for all."""
    a_started, b_started = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def step_a(v: Any) -> str:
        a_started.set()
        await asyncio.wait_for(b_started.wait(), _GUARD)
        order.append("a")
        return f"A{v}"

    async def step_b(v: Any) -> str:
        b_started.set()
        await asyncio.wait_for(a_started.wait(), _GUARD)
        await asyncio.sleep(0)
        order.append("b")
        return f"B{v}"

    first = create_step("first", lambda v: v + 1)
    a = create_step("a", step_a)
    b = create_step("b", step_b)
    c = create_step("c", lambda v: StepResponse.skip())
    merge = create_step("merge", lambda parts: order.append("merge") or parts)

    def composer(inp: Any) -> Any:
        one = first(inp)
        rc, rb, ra = parallelize(c(one), b(one), a(one))
        return merge([ra, rb, rc])

    result = await path.run(path.workflow(wf_name, composer), 1)
    assert result.result == ["A2", "B2", None]
    assert order == ["a", "b", "merge"]
    assert states(result) == {"first": SUCCEEDED, "c": SKIPPED, "b": SUCCEEDED, "a": SUCCEEDED, "merge": SUCCEEDED}
    steps = result.transaction.execution["steps"]
    group = sorted(steps["_root.gate.first"]["next"])
    assert group == ["_root.gate.first.a", "_root.gate.first.b", "_root.gate.first.c"]
    # The next step hangs under the group's last step.
    assert steps["_root.gate.first.a"]["next"] == ["_root.gate.first.a.merge"]


def _hook_workflow(path: ExecutionPath, name: str) -> Any:
    """make -> hook "validate" (values from make and the input) -> the hook's result."""
    make = create_step("make", lambda v: {"order": v})

    def composer(inp: Any) -> WorkflowResponse[Any]:
        order = make(inp)
        hook = create_hook("validate", {"order": order, "extra": inp})
        return WorkflowResponse({"order": order, "hook_result": hook.get_result()}, hooks=[hook])

    return path.workflow(name, composer)


async def test_hook_without_handler(path: ExecutionPath, wf_name: str) -> None:
    """Without a handler the hook step does nothing and get_result() is None."""
    wf = _hook_workflow(path, wf_name)
    result = await path.run(wf, 1)
    assert result.transaction.state == "done"
    assert result.result == {"order": {"order": 1}, "hook_result": None}
    assert states(result) == {"make": SUCCEEDED, "validate": SUCCEEDED, "get-validate-result": SUCCEEDED}


async def test_hook_with_handler(path: ExecutionPath, wf_name: str) -> None:
    """A registered handler receives the resolved values and the context; its output is the hook's result."""
    wf = _hook_workflow(path, wf_name)
    seen: list[Any] = []

    async def handler(values: Any, ctx: StepContext) -> dict[str, Any]:
        seen.append((values, ctx.step_name))
        return {"ok": values["extra"] * 2}

    wf.hooks.validate(handler)
    result = await path.run(wf, 2)
    assert seen == [({"order": {"order": 2}, "extra": 2}, "validate")]
    assert result.result == {"order": {"order": 2}, "hook_result": {"ok": 4}}


async def test_hook_handler_is_compensated_when_a_later_step_fails(path: ExecutionPath, wf_name: str) -> None:
    """A hook handler's compensation receives its compensate_input when a later step fails."""
    undone: list[Any] = []

    def boom(_: Any) -> None:
        raise RuntimeError("later failure")

    first = create_step("first", lambda v: "first", lambda c: undone.append(("first", c)))
    later = create_step("later", boom)

    def composer(inp: Any) -> None:
        first(inp)
        create_hook("h", inp)
        later(inp)

    wf = path.workflow(wf_name, composer)
    wf.hooks.h(lambda values: StepResponse("out", {"undo": values}), lambda c: undone.append(("hook", c)))
    result = await path.run(wf, 7, throw_on_error=False)
    assert result.transaction.state == "reverted"
    assert undone == [("hook", {"undo": 7}), ("first", "first")]


def _recording_child(name: str, seen: list[dict[str, Any]]) -> Any:
    def record(value: Any, ctx: StepContext) -> Any:
        seen.append({"workflow_id": ctx.workflow_id, "transaction_id": ctx.transaction_id,
                     "parent_key": ctx.parent_step_idempotency_key, "input": value})
        return value * 2

    child_step = create_step("child-step", record)
    return create_workflow(name, lambda inp: child_step(inp))


async def test_nested_workflow_result(path: ExecutionPath, wf_name: str) -> None:
    """run_as_step adds "{child}-as-step": its output is the child's result; the child's ids follow the parent's."""
    seen: list[dict[str, Any]] = []
    child_name = f"{wf_name}-child"
    child = _recording_child(child_name, seen)
    after = create_step("after", lambda v: v + 1)

    def composer(inp: Any) -> Any:
        first = child.run_as_step(inp.n)
        second = child.run_as_step(inp.m).config(name="again")
        return {"after": after(first), "again": second}

    wf = path.workflow(wf_name, composer)
    result = await path.run(wf, {"n": 5, "m": 1}, transaction_id="ptx")
    assert result.result == {"after": 11, "again": 2}
    step_name = f"{child_name}-as-step"
    assert seen == [
        {"workflow_id": child_name, "transaction_id": f"{step_name}-ptx",
         "parent_key": f"{wf_name}:ptx:{step_name}:invoke", "input": 5},
        {"workflow_id": child_name, "transaction_id": "again-ptx",
         "parent_key": f"{wf_name}:ptx:again:invoke", "input": 1},
    ]
    assert list(step_records(result)) == [step_name, "again", "after"]  # not the child's own steps
    assert invoke_outputs(result) == {step_name: 10, "again": 2, "after": 11}


async def test_nested_workflow_is_reverted_when_the_parent_fails_later(path: ExecutionPath, wf_name: str) -> None:
    """A later parent failure compensates the child's steps newest first, between the parent's own."""
    undone: list[str] = []
    c1 = create_step("c1", lambda v: "c1", lambda c: undone.append(f"c1 got {c}"))
    c2 = create_step("c2", lambda v: "c2", lambda c: undone.append(f"c2 got {c}"))
    child = create_workflow(f"{wf_name}-child", lambda inp: c2(c1(inp)))
    p1 = create_step("p1", lambda v: "p1", lambda c: undone.append(f"p1 got {c}"))

    def explode(_: Any) -> None:
        raise RuntimeError("parent fails after the child")

    p3 = create_step("p3", explode, lambda c: undone.append(f"p3 got {c}"))

    def composer(inp: Any) -> Any:
        p1(inp)
        out = child.run_as_step(inp)
        p3(out)
        return out

    wf = path.workflow(wf_name, composer)
    result = await path.run(wf, 1, throw_on_error=False)
    step_name = f"{wf_name}-child-as-step"
    assert result.transaction.state == "reverted"
    assert undone == ["p3 got None", "c2 got c2", "c1 got c1", "p1 got p1"]
    assert states(result) == {"p1": ("done", "ok", "reverted", "ok"), step_name: ("done", "ok", "reverted", "ok"),
                              "p3": ("failed", "permanent_failure", "reverted", "ok")}
    assert [(e.action, e.error["message"]) for e in result.errors] == [("p3", "parent fails after the child")]


async def test_nested_workflow_failure_fails_the_parent_step(path: ExecutionPath, wf_name: str) -> None:
    """A failing child reverts itself; the parent's nested step fails with the child's error; the parent reverts."""
    undone: list[str] = []

    class ChildError(Exception):
        pass

    error = ChildError("child failure")

    def child_fail(_: Any) -> None:
        raise error

    c1 = create_step("c1", lambda v: "c1", lambda c: undone.append("c1"))
    c2 = create_step("c2", child_fail, lambda c: undone.append("c2"))
    child = create_workflow(f"{wf_name}-child", lambda inp: c2(c1(inp)))
    p1 = create_step("p1", lambda v: "p1", lambda c: undone.append("p1"))
    after = create_step("after", lambda v: undone.append("after ran"))

    def composer(inp: Any) -> None:
        p1(inp)
        child.run_as_step(inp)
        after(inp)

    wf = path.workflow(wf_name, composer)
    result = await path.run(wf, 1, throw_on_error=False)
    step_name = f"{wf_name}-child-as-step"
    assert result.transaction.state == "reverted"
    assert undone == ["c2", "c1", "p1"]
    assert {n: s[0] for n, s in states(result).items()} == {"p1": "done", step_name: "failed", "after": "not_started"}
    [failure] = result.errors
    assert (failure.action, failure.error["message"], failure.error["name"]) == (step_name, "child failure",
                                                                               "ChildError")

    undone.clear()
    try:
        await path.run(wf, 1)
    except Exception as raised:  # noqa: BLE001 - compared below
        path.check_raised(raised, error)
    else:
        raise AssertionError("the run did not raise")
    assert undone == ["c2", "c1", "p1"]
