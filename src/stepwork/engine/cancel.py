"""``engine.cancel``: compensate every completed step of a stored execution (→ ``reverted``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepwork.engine.outcome import finish
from stepwork.engine.results import WorkflowResult
from stepwork.engine.stored_runs import acquire, checkpointer, load, not_found
from stepwork.errors import StepworkError

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine

__all__ = ["cancel"]

_REFUSED = {
    "failed": "Cannot revert a permanent failed transaction.",
    "reverted": "Cannot revert a transaction that is already reverted.",
    "compensating": "Cannot revert a transaction that is already compensating.",
    "waiting_to_compensate": "Cannot revert a transaction that is already compensating.",
}


async def cancel(engine: WorkflowEngine, workflow_id: str, transaction_id: str, *,
                 throw_on_error: bool = True) -> WorkflowResult[Any] | None:
    """See :meth:`WorkflowEngine.cancel`."""
    async with engine.locked(workflow_id, transaction_id):
        row = await engine.store.latest(workflow_id, transaction_id)
        if row is None:
            if not throw_on_error:
                return None
            raise not_found(transaction_id)
        compiled = engine.definitions.compiled_for(row)  # (compensated with the steps it ran)
        refused = _REFUSED.get(row.state)
        if refused is not None:
            raise StepworkError(StepworkError.Types.NOT_ALLOWED, refused)
        now = engine.clock.time()
        version = await engine.store.acquire(row.key, engine.owner, now + engine.lease_ttl, now, include_done=True)
        if version is None:
            version = await acquire(engine, row, wait=True)
        run = await load(engine, compiled, row, version)
        await run.begin_compensation("The transaction was cancelled.", cancel=True)
        await checkpointer(run).flush()
        await engine.drive(run)
        return await finish(run, throw_on_error=False, result_from=None)
