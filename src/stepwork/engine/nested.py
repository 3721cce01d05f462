"""Nested workflows of stored runs: the child is stored too (a crash loses nothing), may wait (its
parent's step waits with it), and is reverted from its stored state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepwork.engine.compiled import CompiledWorkflow
from stepwork.engine.context import StepContext
from stepwork.engine.nesting import child_transaction_id
from stepwork.engine.outcome import error_to_raise
from stepwork.engine.run import Run
from stepwork.engine.step_calls import WAITING
from stepwork.engine.step_response import StepResponse
from stepwork.engine.stored_runs import FINISHED, acquire, checkpointer, create, load
from stepwork.engine.subscriptions import Listeners
from stepwork.orchestration.states import TransactionState
from stepwork.storage.base import ExecutionKey

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine

__all__ = ["StoredNested"]


class StoredNested:
    """The engine's backend for the nested runs of its stored runs."""

    __slots__ = ("engine",)

    def __init__(self, engine: WorkflowEngine) -> None:
        self.engine = engine

    async def run_child(self, parent: Run, compiled: CompiledWorkflow, value: Any, ctx: StepContext) -> Any:
        """Run the child of a stored parent's step; its response, or ``WAITING`` if the child waits."""
        engine = self.engine
        tid = child_transaction_id(parent, ctx.step_name, ctx.attempt)
        parent_key = ctx.idempotency_key
        async with engine.locked(compiled.name, tid):
            existing = await engine.store.latest(compiled.name, tid)
            if existing is not None and existing.state in FINISHED:
                # The parent step is invoked again (after a crash) but its child already finished.
                child = await load(engine, compiled, existing, existing.version)
            elif existing is not None:
                child = await load(engine, compiled, existing, await acquire(engine, existing, wait=True))
                child.reason = "recovery"
            else:
                context = dict(parent.context)
                context.update(transaction_id=tid, event_group_id=parent.event_group_id,
                               parent_step_idempotency_key=parent_key)
                child = await create(engine, compiled, value, tid, context, parent.event_group_id,
                                     Listeners(engine.subscriptions, compiled.name, tid, None), parent_key)
            if child.key not in parent.children:
                parent.children.append(child.key)
            if not child.finished:
                child.inline = True
                try:
                    await engine.drive(child)
                finally:
                    child.inline = False
        if child.txn.state is TransactionState.DONE:
            return StepResponse(await child.resolve_result(None), child.nested_ref())
        if child.finished:
            raise error_to_raise(child.txn)
        return WAITING

    async def revert_child(self, parent: Run, key: ExecutionKey) -> None:
        """Revert the stored child ``key`` (a child still waiting has its waiting steps failed)."""
        engine = self.engine
        async with engine.locked(key.workflow_id, key.transaction_id):
            row = await engine.store.get(key)
            if row is None or row.state not in ("done", "invoking"):
                return  # gone, reverting already, or it failed and reverted itself
            now = engine.clock.time()
            version = await engine.store.acquire(key, engine.owner, now + engine.lease_ttl, now, include_done=True)
            if version is None:
                version = await acquire(engine, row, wait=True)
            child = await load(engine, engine.definitions.compiled_for(row), row, version)
            await child.begin_compensation("The parent workflow is compensating.", cancel=True)
            child.inline = True
            await checkpointer(child).flush()
            await engine.drive(child)
        if not child.reverted:
            raise error_to_raise(child.txn, handler_type="compensate")
