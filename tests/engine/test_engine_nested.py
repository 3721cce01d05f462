"""Nested workflows under a stored parent: the child is stored too, waits, completes and reverts."""

from __future__ import annotations

import asyncio
from typing import Any

from stepwork import WorkflowResponse, create_step, create_workflow
from stepwork.engine.engine import WorkflowEngine


async def test_stored_parent_reverts_a_finished_child_on_a_later_failure(engine: WorkflowEngine,
                                                                         wf_name: str) -> None:
    """A later parent failure compensates the child's completed steps (newest first), then the parent's."""
    undone: list[str] = []
    c1 = create_step("c1", lambda v: "c1", lambda c: undone.append("c1"))
    c2 = create_step("c2", lambda v: "c2", lambda c: undone.append("c2"))
    child = create_workflow({"name": f"{wf_name}-child"}, lambda inp: c2(c1(inp)))
    first = create_step("first", lambda v: "first", lambda c: undone.append("first"))

    def explode(value: Any) -> None:
        raise RuntimeError("parent fails after the child")

    boom = create_step("boom", explode)

    def parent(inp: Any) -> Any:
        f = first(inp)
        out = child.run_as_step(f)
        boom(out)
        return WorkflowResponse(out)

    wf = create_workflow({"name": wf_name, "retention_time": 60}, parent)
    result = await engine.run(wf, 1, transaction_id="p", throw_on_error=False)
    assert result.transaction.state == "reverted"
    assert undone == ["c2", "c1", "first"]
    [child_row] = await engine.list_workflow_executions({"workflow_id": f"{wf_name}-child"})
    assert child_row.transaction_id == f"{wf_name}-child-as-step-p"
    assert child_row.state == "reverted"


async def test_a_waiting_child_makes_its_parent_step_wait_then_completes_it(engine: WorkflowEngine,
                                                                            wf_name: str) -> None:
    """A child with an async step: the parent run returns invoking; completing the child's step
    finishes the child, which completes the parent's step and the parent."""
    wait = create_step({"name": "wait", "async": True}, lambda v: None)
    tail = create_step("tail", lambda v: {"child-got": v})
    child = create_workflow({"name": f"{wf_name}-child"}, lambda inp: tail(wait(inp)))
    after = create_step("after", lambda v: {"parent-got": v})
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: after(child.run_as_step(inp)))

    first = await engine.run(wf, 1, transaction_id="p")
    assert first.transaction.state == "invoking"
    child_tid = f"{wf_name}-child-as-step-p"
    await engine.set_step_success(f"{wf_name}-child:{child_tid}:wait:invoke", "external")

    async def parent_done() -> bool:
        rows = await engine.list_workflow_executions({"workflow_id": wf_name})
        return rows[0].state == "done"
    deadline = asyncio.get_running_loop().time() + 3
    while not await parent_done():
        assert asyncio.get_running_loop().time() < deadline, "the parent never finished"
        await asyncio.sleep(0.01)
    [row] = await engine.list_workflow_executions({"workflow_id": wf_name})
    assert row.context is not None
    assert row.context["data"]["invoke"]["after"] == {"parent-got": {"child-got": "external"}}


async def test_children_of_a_parent_without_retention_go_with_it(engine: WorkflowEngine, wf_name: str) -> None:
    """A stored parent without retention_time removes its nested executions when it finishes."""
    c = create_step("c", lambda v: v)
    child = create_workflow({"name": f"{wf_name}-child"}, lambda inp: c(inp))
    wf = create_workflow({"name": wf_name, "store": True}, lambda inp: child.run_as_step(inp))
    result = await engine.run(wf, 5, transaction_id="p")
    assert result.result == 5
    assert await engine.list_workflow_executions({"workflow_id": f"{wf_name}-child"}) == []
    assert await engine.list_workflow_executions({"workflow_id": wf_name}) == []
