"""Driving a stored run with this engine's lease: the one place a stored drive starts and ends.

While a run is driven here its key is in ``engine.driving``, and the lease loop renews exactly
those leases: a run whose drive stopped half-way (a database outage, say) is no longer renewed,
so once its lease runs out any engine's recovery takes it over.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from stepwork.engine import completion
from stepwork.engine.log_fields import log_extra
from stepwork.engine.outcome import error_to_raise
from stepwork.engine.step_response import StepResponse
from stepwork.errors import StepworkError
from stepwork.orchestration.states import TransactionState
from stepwork.storage.base import LeaseLostError

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine
    from stepwork.engine.run import Run

__all__ = ["complete_parent", "drive"]

logger = logging.getLogger("stepwork.engine")


async def drive(engine: WorkflowEngine, run: Run) -> None:
    """Advance ``run``; a nested run that finished outside its parent's call completes the parent's step."""
    key = run.key
    engine.driving[key] = engine.driving.get(key, 0) + 1
    try:
        await run.drive()
    except BaseException as exc:
        if not isinstance(exc, LeaseLostError):
            # The drive stopped half-way (a database error, a crash-like exit): hand the lease to
            # nobody alive, so that recovery takes the execution over once the lease expires. If
            # even that write fails, the lease simply runs out: nobody renews it any more.
            with contextlib.suppress(Exception):
                await engine.store.abandon(key, engine.owner)
            if (isinstance(exc, StepworkError) and exc.type == StepworkError.Types.DB_ERROR
                    and run.cp is not None and run.cp.pending_row is None):
                # The execution is stored: the caller must not take this error for "it did not run".
                note = (f' The execution {run.transaction_id} of workflow "{run.workflow_id}" is kept and '
                        f"continues: an engine takes it over once its lease expires ({engine.lease_ttl:g} s).")
                if note not in exc.message:
                    exc.message += note
        raise
    finally:
        left = engine.driving.get(key, 1) - 1
        if left:
            engine.driving[key] = left
        else:
            engine.driving.pop(key, None)
    if run.finished and run.parent_step_idempotency_key is not None and not run.inline:
        # After this transaction's lock is let go: completing the parent may revert this child, which
        # takes the same lock (waiting for it here would never end).
        await engine.after_unlock(run.workflow_id, run.transaction_id, lambda: complete_parent(engine, run))


async def complete_parent(engine: WorkflowEngine, child: Run) -> None:
    """A nested run finished on its own (after a wait): complete its parent's waiting step."""
    key = child.parent_step_idempotency_key
    assert key is not None
    # The attempt of the parent's step that started this child (its transaction id names it): a
    # child of an attempt the step has left does not complete the step.
    _, parent_tid, step_name, _ = completion.parse_idempotency_key(key)
    rest = child.transaction_id.removeprefix(f"{step_name}-{parent_tid}").removeprefix("-attempt-")
    attempt = int(rest) if rest.isdigit() else 1
    try:
        if child.txn.state is TransactionState.DONE:
            result = await child.resolve_result(None)
            apply = completion.succeed(StepResponse(result, child.nested_ref()))
        else:
            apply = completion.fail(error_to_raise(child.txn), False)
        await completion.complete(engine, key, apply, throw_on_error=False, attempt=attempt)
    except StepworkError as exc:
        logger.warning("Could not complete the parent step %s of nested execution %s: %s", key,
                       child.transaction_id, exc,
                       extra=log_extra(child.workflow_id, child.transaction_id, child.run_id))
