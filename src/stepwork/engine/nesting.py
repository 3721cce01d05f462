"""Nested runs: where a run's nested workflows run (a protocol the in-memory and stored backends
implement) and the transaction id a nested run gets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, cast

from stepwork.storage.base import ExecutionKey

if TYPE_CHECKING:
    from stepwork.engine.compiled import CompiledWorkflow
    from stepwork.engine.context import StepContext
    from stepwork.engine.run import Run

__all__ = ["NestedCalls", "NestedRuns", "child_transaction_id"]


class NestedRuns(Protocol):
    """Where a run's nested workflows run: in memory, or stored by the engine."""

    async def run_child(self, parent: Run, compiled: CompiledWorkflow, value: Any, ctx: StepContext) -> Any:
        """Run the child of step ``ctx.step_name``: its ``StepResponse``, or ``WAITING`` if it waits."""
        ...

    async def revert_child(self, parent: Run, key: ExecutionKey) -> None:
        """Compensate the child ``key`` (nothing if it did not finish ``done``)."""
        ...


def child_transaction_id(parent: Run | NestedCalls, step_name: str, attempt: int) -> str:
    """The transaction id of the nested workflow run by ``step_name`` (one per attempt)."""
    tid = f"{step_name}-{parent.transaction_id}"
    return tid if attempt <= 1 else f"{tid}-attempt-{attempt}"


class NestedCalls:
    """The run's side of its nested workflows (mixed into ``Run``). A nested step starts its child
    through ``run.nested.run_child`` (one call less on the hot path) and reverts it through
    :meth:`revert_child`."""

    __slots__ = ()

    nested: NestedRuns | None
    children: list[ExecutionKey]
    workflow_id: str
    transaction_id: str
    run_id: str

    async def revert_child(self, value: Any, ctx: StepContext) -> None:
        """Compensation of a nested-workflow step: revert the child it ran."""
        if isinstance(value, dict) and {"workflow_id", "transaction_id", "run_id"} <= value.keys():
            key = ExecutionKey(value["workflow_id"], value["transaction_id"], value["run_id"])
        else:
            # The nested step never completed (its child waited, or failed): find the child it started.
            prefix = child_transaction_id(self, ctx.step_name, 1)
            mine = [k for k in self.children if k.transaction_id == prefix
                    or k.transaction_id.startswith(prefix + "-attempt-")]
            if not mine:
                return
            key = mine[-1]
        if self.nested is not None:
            await self.nested.revert_child(cast("Run", self), key)

    def nested_ref(self) -> dict[str, str]:
        """What a parent's step keeps to revert this nested execution."""
        return {"workflow_id": self.workflow_id, "transaction_id": self.transaction_id, "run_id": self.run_id}
