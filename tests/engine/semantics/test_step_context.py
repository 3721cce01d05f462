"""What a step knows on every path: ids, keys, attempts, the run context, metadata, nested runs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from stepwork import StepContext, StepResponse, WorkflowResponse, create_hook, create_step, create_workflow

from .conftest import ExecutionPath, invoke_outputs, states


def _snapshot(ctx: StepContext) -> dict[str, Any]:
    return {"workflow_id": ctx.workflow_id, "transaction_id": ctx.transaction_id, "run_id": ctx.run_id,
            "step_name": ctx.step_name, "action": ctx.action, "attempt": ctx.attempt,
            "idempotency_key": ctx.idempotency_key, "event_group_id": ctx.event_group_id,
            "parent_key": ctx.parent_step_idempotency_key, "context": dict(ctx.context),
            "metadata": {k: v for k, v in ctx.metadata.items() if k != "timestamp"}}


async def test_invoke_and_compensation_contexts(path: ExecutionPath, wf_name: str) -> None:
    """Ids, keys, the caller's run context with transaction_id and event_group_id, metadata; a compensation
    has action "compensate", its own key, and attempts restarting at 1."""
    seen: list[dict[str, Any]] = []

    def flaky(inp: Any, ctx: StepContext) -> str:
        seen.append(_snapshot(ctx))
        if ctx.attempt < 2:
            raise RuntimeError("once")
        return "s-out"

    def flaky_undo(ci: Any, ctx: StepContext) -> dict[str, Any]:
        seen.append(_snapshot(ctx))
        if ctx.attempt < 2:
            raise RuntimeError("undo once")
        return {"undone": ci}

    s = create_step({"name": "s", "max_retries": 1}, flaky, flaky_undo)
    stop = create_step("stop", lambda v: StepResponse.permanent_failure("stop"))
    caller_context = {"tenant": "acme", "event_group_id": "eg-1"}
    result = await path.run(path.workflow(wf_name, lambda inp: (s(inp), stop(inp))), transaction_id="t1",
                            context=caller_context, throw_on_error=False)

    assert caller_context == {"tenant": "acme", "event_group_id": "eg-1"}
    assert [(x["action"], x["attempt"]) for x in seen] == [("invoke", 1), ("invoke", 2), ("compensate", 1),
                                                           ("compensate", 2)]
    for snap in seen:
        assert snap["workflow_id"] == wf_name
        assert snap["transaction_id"] == "t1"
        assert snap["run_id"] == result.transaction.run_id
        assert snap["step_name"] == "s"
        assert snap["idempotency_key"] == f"{wf_name}:t1:s:{snap['action']}"
        assert snap["event_group_id"] == "eg-1"
        assert snap["parent_key"] is None
        assert snap["context"]["tenant"] == "acme"
        assert snap["context"]["transaction_id"] == "t1"
        assert snap["context"]["event_group_id"] == "eg-1"
        assert snap["metadata"] == {"model_id": wf_name, "idempotency_key": snap["idempotency_key"],
                                    "action": "s", "action_type": snap["action"], "attempt": snap["attempt"]}
    assert result.transaction.state == "reverted"
    assert states(result)["s"] == ("done", "ok", "reverted", "ok")
    assert result.transaction.context["data"]["compensate"] == {"s": {"undone": "s-out"}}
    assert result.transaction.execution["metadata"]["eventGroupId"] == "eg-1"


async def test_nested_run_context_and_retried_nested_step(path: ExecutionPath, wf_name: str) -> None:
    """The child gets the parent's run context and event group; a retried nested step runs its child as
    "{step}-{parent txn}-attempt-{n}"."""
    seen: list[dict[str, Any]] = []

    def child_step(inp: Any, ctx: StepContext) -> str:
        seen.append(_snapshot(ctx))
        if len(seen) == 1:
            raise RuntimeError("the first child run fails")
        return f"child got {inp}"

    c = create_step("c", child_step)
    child_name = f"{wf_name}-child"
    child = create_workflow(child_name, lambda inp: c(inp))
    wf = path.workflow(wf_name, lambda inp: child.run_as_step(inp).config(max_retries=1))
    result = await path.run(wf, 3, transaction_id="ptx", context={"tenant": "acme", "event_group_id": "eg-2"})

    step_name = f"{child_name}-as-step"
    assert result.result == "child got 3"
    assert [s["transaction_id"] for s in seen] == [f"{step_name}-ptx", f"{step_name}-ptx-attempt-2"]
    for snap in seen:
        assert snap["workflow_id"] == child_name
        assert snap["parent_key"] == f"{wf_name}:ptx:{step_name}:invoke"
        assert snap["event_group_id"] == "eg-2"
        assert snap["context"]["tenant"] == "acme"
    assert invoke_outputs(result) == {step_name: "child got 3"}


class Discount(BaseModel):
    code: str
    percent: int


async def test_hook_result_validated_by_a_pydantic_model(path: ExecutionPath, wf_name: str) -> None:
    """A pydantic result_validator makes the hook's result a model instance; an invalid output reverts the run."""
    make = create_step("make", lambda v: {"order": v}, lambda c: undone.append(("make", c)))
    undone: list[Any] = []

    def composer(inp: Any) -> WorkflowResponse[Any]:
        order = make(inp)
        hook = create_hook("discount", {"order": order}, result_validator=Discount)
        return WorkflowResponse({"order": order, "discount": hook.get_result()}, hooks=[hook])

    wf = path.workflow(wf_name, composer)
    wf.hooks.discount(lambda values: {"code": "X10", "percent": values["order"]["order"]},
                      lambda c: undone.append(("hook", c)))

    result = await path.run(wf, 10)
    assert result.result == {"order": {"order": 10}, "discount": Discount(code="X10", percent=10)}
    assert isinstance(result.result["discount"], Discount)

    failed = await path.run(wf, "not a number", throw_on_error=False)
    assert failed.transaction.state == "reverted"
    assert [(e.action, e.error["name"]) for e in failed.errors] == [("get-discount-result", "ValidationError")]
    assert undone == [("hook", {"code": "X10", "percent": "not a number"}), ("make", {"order": "not a number"})]
