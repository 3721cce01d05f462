"""parallelize(*refs): order of references, concurrency, joins, errors (SPEC §3.4)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stepwork import StepResponse, StepworkError, create_step, create_workflow, parallelize, transform

from ._util import compensate_states, invoke_states

# A guard, not a wait: an implementation that runs the group sequentially fails fast instead of hanging.
_GUARD = 2.0


async def test_returns_references_in_argument_order(wf_name: str) -> None:
    """parallelize(a, b, c) returns the three references in argument order."""
    a = create_step("a", lambda _: "A")
    b = create_step("b", lambda _: "B")
    c = create_step("c", lambda _: "C")

    def composer(inp: Any) -> Any:
        rc, ra, rb = parallelize(c(), a(), b())
        return [ra, rb, rc]

    wf = create_workflow(wf_name, composer)

    assert (await wf.run()).result == ["A", "B", "C"]


async def test_group_steps_run_concurrently(wf_name: str) -> None:
    """Steps of a group run at the same time: each waits for a signal only the other one gives."""
    a_started = asyncio.Event()
    b_started = asyncio.Event()

    async def step_a(_: Any) -> str:
        a_started.set()
        await asyncio.wait_for(b_started.wait(), _GUARD)
        return "a"

    async def step_b(_: Any) -> str:
        b_started.set()
        await asyncio.wait_for(a_started.wait(), _GUARD)
        return "b"

    a = create_step("a", step_a)
    b = create_step("b", step_b)

    wf = create_workflow(wf_name, lambda inp: list(parallelize(a(), b())))
    result = await wf.run()

    assert result.result == ["a", "b"]


async def test_next_step_waits_for_every_group_member(wf_name: str) -> None:
    """The step after a group starts only once all its members have settled."""
    order: list[str] = []
    release_slow = asyncio.Event()

    async def fast(_: Any) -> str:
        order.append("fast-done")
        release_slow.set()
        return "fast"

    async def slow(_: Any) -> str:
        await asyncio.wait_for(release_slow.wait(), _GUARD)
        await asyncio.sleep(0)
        order.append("slow-done")
        return "slow"

    f = create_step("fast", fast)
    s = create_step("slow", slow)
    after = create_step("after", lambda value: order.append("after") or value)

    def composer(inp: Any) -> Any:
        rs, rf = parallelize(s(), f())
        return after({"slow": rs, "fast": rf})

    wf = create_workflow(wf_name, composer)
    result = await wf.run()

    assert order == ["fast-done", "slow-done", "after"]
    assert result.result == {"slow": "slow", "fast": "fast"}


async def test_group_members_read_earlier_steps(wf_name: str) -> None:
    """Group members may read the outputs of steps that ran before the group."""
    first = create_step("first", lambda _: 10)
    a = create_step("a", lambda value: value + 1)
    b = create_step("b", lambda value: value + 2)

    def composer(inp: Any) -> Any:
        out = first()
        ra, rb = parallelize(a(out), b(transform(out, lambda v: v * 2)))
        return [ra, rb]

    wf = create_workflow(wf_name, composer)

    assert (await wf.run()).result == [11, 22]


async def test_failure_in_group_lets_siblings_finish_then_compensates_all(wf_name: str) -> None:
    """A failing member lets its siblings finish, then the group and earlier steps are compensated."""
    events: list[str] = []
    sibling_may_finish = asyncio.Event()

    async def slow_ok(_: Any) -> str:
        await asyncio.wait_for(sibling_may_finish.wait(), _GUARD)
        events.append("slow-finished")
        return "slow"

    async def failing(_: Any) -> None:
        sibling_may_finish.set()
        raise RuntimeError("member failed")

    first = create_step("first", lambda _: 1, lambda _: events.append("undo-first"))
    slow = create_step("slow", slow_ok, lambda _: events.append("undo-slow"))
    fail = create_step("fail", failing, lambda _: events.append("undo-fail"))
    never = create_step("never", lambda _: events.append("never"))

    def composer(inp: Any) -> None:
        first()
        parallelize(slow(), fail())
        never()

    wf = create_workflow(wf_name, composer)
    result = await wf.run(throw_on_error=False)

    assert result.transaction.state == "reverted"
    assert events[0] == "slow-finished"
    assert set(events[1:3]) == {"undo-slow", "undo-fail"}
    assert events[3:] == ["undo-first"]
    assert invoke_states(result) == {"first": "done", "slow": "done", "fail": "failed", "never": "not_started"}
    assert compensate_states(result)["never"] == "dormant"


async def test_group_members_are_compensated_concurrently(wf_name: str) -> None:
    """Compensations of one group run at the same time: each waits for a signal only the other gives."""
    a_undoing = asyncio.Event()
    b_undoing = asyncio.Event()
    undone: list[str] = []

    async def undo_a(_: Any) -> None:
        a_undoing.set()
        await asyncio.wait_for(b_undoing.wait(), _GUARD)
        undone.append("a")

    async def undo_b(_: Any) -> None:
        b_undoing.set()
        await asyncio.wait_for(a_undoing.wait(), _GUARD)
        undone.append("b")

    def fail(_: Any) -> None:
        raise RuntimeError("after the group")

    a = create_step("a", lambda _: "a", undo_a)
    b = create_step("b", lambda _: "b", undo_b)
    f = create_step("f", fail)

    def composer(inp: Any) -> None:
        parallelize(a(), b())
        f()

    wf = create_workflow(wf_name, composer)
    result = await wf.run(throw_on_error=False)

    assert result.transaction.state == "reverted"
    assert sorted(undone) == ["a", "b"]


async def test_skipped_member_does_not_block_the_group(wf_name: str) -> None:
    """A member that skips (StepResponse.skip()) settles the group like any other; the next step runs."""
    a = create_step("a", lambda _: StepResponse.skip())
    b = create_step("b", lambda _: "b")
    after = create_step("after", lambda value: value)

    def composer(inp: Any) -> Any:
        ra, rb = parallelize(a(), b())
        return after([ra, rb])

    wf = create_workflow(wf_name, composer)
    result = await wf.run()

    assert result.result == [None, "b"]
    assert invoke_states(result) == {"a": "skipped", "b": "done", "after": "done"}


async def test_parallelize_of_non_step_reference_is_an_error(wf_name: str) -> None:
    """parallelize(...) given a derived reference, a transform or a literal raises StepworkError."""
    a = create_step("a", lambda _: 1)

    with pytest.raises(StepworkError) as info:
        create_workflow(wf_name, lambda inp: parallelize(a(), inp.x))
    assert info.value.type == "invalid_data"

    with pytest.raises(StepworkError):
        create_workflow(f"{wf_name}-t", lambda inp: parallelize(a(), transform(inp, lambda v: v)))

    with pytest.raises(StepworkError):
        create_workflow(f"{wf_name}-lit", lambda inp: parallelize(a(), 5))


async def test_parallelize_of_a_step_output_path_is_an_error(wf_name: str) -> None:
    """parallelize(step().key) (a path on a step's reference, not the step's reference) is an error."""
    a = create_step("a", lambda _: {"k": 1})
    b = create_step("b", lambda _: 2)

    with pytest.raises(StepworkError):
        create_workflow(wf_name, lambda inp: parallelize(a().k, b()))


async def test_member_reading_another_members_output_is_an_error(wf_name: str) -> None:
    """A group member reading the output of another member raises StepworkError naming both steps."""
    a = create_step("a", lambda _: 1)
    b = create_step("b", lambda value: value)

    def composer(inp: Any) -> Any:
        ra = a()
        return parallelize(ra, b({"from_a": ra}))

    with pytest.raises(StepworkError) as info:
        create_workflow(wf_name, composer)

    assert info.value.type == "invalid_data"
    assert '"a"' in info.value.message
    assert '"b"' in info.value.message


async def test_member_reading_another_member_through_transform_is_an_error(wf_name: str) -> None:
    """Reading a group member's output through a transform is caught too."""
    a = create_step("a", lambda _: 1)
    b = create_step("b", lambda value: value)

    def composer(inp: Any) -> Any:
        ra = a()
        return parallelize(ra, b(transform(ra, lambda v: v + 1)))

    with pytest.raises(StepworkError):
        create_workflow(wf_name, composer)


async def test_parallelize_outside_workflow_is_an_error() -> None:
    """parallelize(...) outside a composer raises StepworkError."""
    with pytest.raises(StepworkError) as info:
        parallelize()

    assert "inside a workflow definition" in info.value.message
