"""Nested workflows: run_as_step names, ids, shared run facts, renames and joint rollback (SPEC §3.6)."""

from __future__ import annotations

from typing import Any

import pytest

from stepwork import StepContext, StepworkError, WorkflowResponse, create_step, create_workflow, when

from ._util import compensate_states, invoke_states


def _boom(_: Any = None) -> None:
    raise RuntimeError("parent failure")


def _ctx_child(name: str, seen: list[dict[str, Any]]) -> Any:
    """A child workflow whose one step records its context and returns its input doubled."""

    def record(value: Any, ctx: StepContext) -> Any:
        seen.append({
            "workflow_id": ctx.workflow_id,
            "transaction_id": ctx.transaction_id,
            "run_id": ctx.run_id,
            "event_group_id": ctx.event_group_id,
            "parent_key": ctx.parent_step_idempotency_key,
            "context": dict(ctx.context),
            "input": value,
        })
        return value * 2

    s = create_step("child-step", record)
    return create_workflow(name, lambda inp: s(inp))


async def test_run_as_step_adds_named_step_returning_child_result(wf_name: str) -> None:
    """run_as_step adds step "{child}-as-step"; its output is the child's result."""
    seen: list[dict[str, Any]] = []
    child = _ctx_child(f"{wf_name}-child", seen)
    after = create_step("after", lambda value: value + 1)

    def composer(inp: Any) -> Any:
        out = child.run_as_step(inp.n)
        return after(out)

    parent = create_workflow(wf_name, composer)

    assert parent.step_names == [f"{wf_name}-child-as-step", "after"]
    result = await parent.run({"n": 5})
    assert result.result == 11
    assert seen[0]["input"] == 5


async def test_child_transaction_id_and_shared_run_facts(wf_name: str) -> None:
    """The child runs as "{step}-{parent txn}", shares the parent's event group and run id, knows its parent key."""
    seen: list[dict[str, Any]] = []
    parent_seen: list[dict[str, Any]] = []
    child_name = f"{wf_name}-child"
    child = _ctx_child(child_name, seen)

    def parent_record(_: Any, ctx: StepContext) -> None:
        parent_seen.append({"run_id": ctx.run_id, "event_group_id": ctx.event_group_id,
                            "parent_key": ctx.parent_step_idempotency_key})

    p = create_step("parent-step", parent_record)

    def composer(inp: Any) -> Any:
        p()
        return child.run_as_step(1)

    parent = create_workflow(wf_name, composer)
    result = await parent.run(transaction_id="ptx-1", context={"tenant": "acme"})

    step_name = f"{child_name}-as-step"
    (child_seen,) = seen
    assert child_seen["workflow_id"] == child_name
    assert child_seen["transaction_id"] == f"{step_name}-ptx-1"
    assert child_seen["run_id"] == result.transaction.run_id == parent_seen[0]["run_id"]
    assert child_seen["event_group_id"] == parent_seen[0]["event_group_id"]
    assert child_seen["parent_key"] == f"{wf_name}:ptx-1:{step_name}:invoke"
    assert parent_seen[0]["parent_key"] is None
    assert child_seen["context"]["transaction_id"] == f"{step_name}-ptx-1"
    assert child_seen["context"]["event_group_id"] == parent_seen[0]["event_group_id"]
    assert child_seen["context"]["tenant"] == "acme"


async def test_child_shares_caller_given_event_group(wf_name: str) -> None:
    """An event group given in the parent's context reaches the child."""
    seen: list[dict[str, Any]] = []
    child = _ctx_child(f"{wf_name}-child", seen)
    parent = create_workflow(wf_name, lambda inp: child.run_as_step(1))

    await parent.run(context={"event_group_id": "group-42"})

    assert seen[0]["event_group_id"] == "group-42"


async def test_child_used_twice_under_two_names_gets_distinct_ids(wf_name: str) -> None:
    """.config(name=...) renames the nested step, so one child used twice runs under two transaction ids."""
    seen: list[dict[str, Any]] = []
    child = _ctx_child(f"{wf_name}-child", seen)

    def composer(inp: Any) -> WorkflowResponse[Any]:
        first = child.run_as_step(1).config(name="first-use")
        second = child.run_as_step(2).config(name="second-use")
        return WorkflowResponse([first, second])

    parent = create_workflow(wf_name, composer)
    result = await parent.run(transaction_id="ptx")

    assert parent.step_names == ["first-use", "second-use"]
    assert result.result == [2, 4]
    assert [s["transaction_id"] for s in seen] == ["first-use-ptx", "second-use-ptx"]
    assert [s["parent_key"] for s in seen] == [f"{wf_name}:ptx:first-use:invoke",
                                               f"{wf_name}:ptx:second-use:invoke"]


async def test_child_used_twice_without_rename_is_an_error(wf_name: str) -> None:
    """Using one child twice without renaming raises StepworkError naming the nested step."""
    child = _ctx_child(f"{wf_name}-child", [])

    def composer(inp: Any) -> None:
        child.run_as_step(1)
        child.run_as_step(2)

    with pytest.raises(StepworkError) as info:
        create_workflow(wf_name, composer)

    assert f"{wf_name}-child-as-step" in info.value.message


async def test_later_parent_failure_compensates_child_newest_first(wf_name: str) -> None:
    """A parent step failing after the child compensates the child's steps (newest first), then the parent's."""
    events: list[str] = []
    c1 = create_step("c1", lambda _: "c1", lambda _: events.append("undo-c1"))
    c2 = create_step("c2", lambda _: "c2", lambda _: events.append("undo-c2"))

    def child_composer(inp: Any) -> None:
        c1()
        c2()

    child = create_workflow(f"{wf_name}-child", child_composer)
    p1 = create_step("p1", lambda _: "p1", lambda _: events.append("undo-p1"))
    p3 = create_step("p3", _boom, lambda _: events.append("undo-p3"))

    def composer(inp: Any) -> None:
        p1()
        child.run_as_step()
        p3()

    parent = create_workflow(wf_name, composer)
    result = await parent.run(throw_on_error=False)

    assert result.transaction.state == "reverted"
    assert events == ["undo-p3", "undo-c2", "undo-c1", "undo-p1"]
    assert compensate_states(result) == {"p1": "reverted", f"{wf_name}-child-as-step": "reverted",
                                         "p3": "reverted"}


async def test_child_failure_fails_parent_step_and_reverts_everything(wf_name: str) -> None:
    """A failing child reverts itself, fails the parent's nested step, and the parent's earlier steps revert."""
    events: list[str] = []
    err = RuntimeError("child failure")

    def child_fail(_: Any) -> None:
        raise err

    c1 = create_step("c1", lambda _: "c1", lambda _: events.append("undo-c1"))
    c2 = create_step("c2", child_fail, lambda _: events.append("undo-c2"))

    def child_composer(inp: Any) -> None:
        c1()
        c2()

    child = create_workflow(f"{wf_name}-child", child_composer)
    p1 = create_step("p1", lambda _: "p1", lambda _: events.append("undo-p1"))
    after = create_step("after", lambda _: events.append("after-ran"))

    def composer(inp: Any) -> None:
        p1()
        child.run_as_step()
        after()

    parent = create_workflow(wf_name, composer)
    result = await parent.run(throw_on_error=False)

    step_name = f"{wf_name}-child-as-step"
    assert result.transaction.state == "reverted"
    assert invoke_states(result) == {"p1": "done", step_name: "failed", "after": "not_started"}
    assert events == ["undo-c2", "undo-c1", "undo-p1"]
    assert result.errors[0].action == step_name
    assert result.errors[0].error["message"] == "child failure"

    with pytest.raises(RuntimeError) as info:
        await parent.run()
    assert info.value is err


async def test_child_compensation_failure_fails_the_parent(wf_name: str) -> None:
    """A child compensation failing during joint rollback fails the nested step's compensation: parent `failed`."""
    events: list[str] = []

    def bad_undo(_: Any) -> None:
        raise RuntimeError("child undo failed")

    c1 = create_step("c1", lambda _: "c1", bad_undo)
    child = create_workflow(f"{wf_name}-child", lambda inp: c1())
    p1 = create_step("p1", lambda _: "p1", lambda _: events.append("undo-p1"))
    p3 = create_step("p3", _boom)

    def composer(inp: Any) -> None:
        p1()
        child.run_as_step()
        p3()

    parent = create_workflow(wf_name, composer)
    result = await parent.run(throw_on_error=False)

    step_name = f"{wf_name}-child-as-step"
    assert result.transaction.state == "failed"
    assert events == ["undo-p1"]
    assert compensate_states(result)[step_name] == "failed"
    stored = [(e["action"], e["handler_type"]) for e in result.transaction.context["errors"]]
    assert stored == [("p3", "invoke"), (step_name, "compensate")]


async def test_nested_step_in_false_when_is_skipped_and_child_never_runs(wf_name: str) -> None:
    """A nested step inside a false `when` ends skipped and the child workflow never runs."""
    seen: list[dict[str, Any]] = []
    child = _ctx_child(f"{wf_name}-child", seen)

    parent = create_workflow(wf_name, lambda inp: when(inp, lambda v: v).then(lambda: child.run_as_step(3)))

    skipped = await parent.run(False)
    assert seen == []
    assert skipped.result is None
    assert invoke_states(skipped) == {f"{wf_name}-child-as-step": "skipped"}

    ran = await parent.run(True)
    assert ran.result == 6
    assert len(seen) == 1


async def test_nested_step_retry_uses_attempt_suffix(wf_name: str) -> None:
    """A retried nested step runs its child as "{step}-{parent txn}-attempt-{n}" from the second attempt."""
    tids: list[str] = []

    def flaky(_: Any, ctx: StepContext) -> str:
        tids.append(ctx.transaction_id)
        if len(tids) == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    s = create_step("flaky", flaky)
    child = create_workflow(f"{wf_name}-child", lambda inp: s())
    parent = create_workflow(wf_name, lambda inp: child.run_as_step().config(max_retries=1))

    result = await parent.run(transaction_id="ptx")

    step_name = f"{wf_name}-child-as-step"
    assert result.result == "ok"
    assert tids == [f"{step_name}-ptx", f"{step_name}-ptx-attempt-2"]


async def test_run_as_step_outside_workflow_is_an_error(wf_name: str) -> None:
    """run_as_step outside a composer raises StepworkError."""
    child = _ctx_child(wf_name, [])

    with pytest.raises(StepworkError) as info:
        child.run_as_step(1)

    assert "inside a workflow definition" in info.value.message
