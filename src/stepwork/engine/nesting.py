"""Nested runs: where a run's nested workflows run (a protocol the in-memory and stored backends
implement) and the transaction id a nested run gets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from stepwork.engine.compiled import CompiledWorkflow
    from stepwork.engine.context import StepContext
    from stepwork.engine.run import Run
    from stepwork.storage.base import ExecutionKey

__all__ = ["NestedRuns", "child_transaction_id"]


class NestedRuns(Protocol):
    """Where a run's nested workflows run: in memory, or stored by the engine."""

    async def run_child(self, parent: Run, compiled: CompiledWorkflow, value: Any, ctx: StepContext) -> Any:
        """Run the child of step ``ctx.step_name``: its ``StepResponse``, or ``WAITING`` if it waits."""
        ...

    async def revert_child(self, parent: Run, key: ExecutionKey) -> None:
        """Compensate the child ``key`` (nothing if it did not finish ``done``)."""
        ...


def child_transaction_id(parent: Run, step_name: str, attempt: int) -> str:
    """The transaction id of the nested workflow run by ``step_name`` (one per attempt)."""
    tid = f"{step_name}-{parent.transaction_id}"
    return tid if attempt <= 1 else f"{tid}-attempt-{attempt}"
