"""The end of a run call: the result resolved, ``on_finish`` told, and the error a failed run raises."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from stepwork.container import Modules
from stepwork.engine.log_fields import log_extra
from stepwork.engine.results import WorkflowResult
from stepwork.engine.run_events import emit
from stepwork.errors import StepworkError
from stepwork.orchestration.states import TransactionState
from stepwork.orchestration.transaction import StepFailure, Transaction

if TYPE_CHECKING:
    from stepwork.engine.run import Run

__all__ = ["error_to_raise", "finish", "settle_event_group"]

_FAILED_STATES = (TransactionState.FAILED, TransactionState.REVERTED)
logger = logging.getLogger("stepwork.engine")


def error_to_raise(txn: Transaction, handler_type: str = "invoke") -> BaseException:
    """The error a failed run raises: its first error, as the original exception when there is one."""
    failures = [e for e in txn.errors if e.handler_type == handler_type] or txn.errors
    if not failures:
        return StepworkError(StepworkError.Types.UNEXPECTED_STATE,
                             f'Workflow "{txn.plan.workflow_id}" ended "{txn.state}" without a recorded error.')
    first = failures[0]
    if first.exception is not None:
        return first.exception
    record = first.error
    err = StepworkError(str(record.get("type") or StepworkError.Types.UNEXPECTED_STATE),
                        str(record.get("message", "")))
    # Raised in another process (or stored): the original class is gone, its record is carried.
    err.name = str(record.get("name", "Error"))
    err.stack = str(record.get("stack", ""))
    err.action = first.action
    return err


async def finish(run: Run, *, throw_on_error: bool, result_from: str | None,
                 notify: bool = True) -> WorkflowResult[Any]:
    """Resolve the result of a run that stopped, tell ``on_finish`` if it finished (and ``notify``:
    a replay of a finished execution is not a new finish) and raise if asked to."""
    txn = run.txn
    result: Any = None
    try:
        compiled = run.compiled
        if not txn.is_finished:
            pass  # it waits: no result yet (its transforms run once, when it finishes)
        elif result_from is None and not compiled.result_pre:
            result = compiled.read_result(run)
        else:
            result = await run.resolve_result(result_from)
    except Exception as exc:
        txn.errors.append(StepFailure(None, "invoke", exc))
        if throw_on_error and txn.state not in _FAILED_STATES:
            raise
        # A failed run raises its first error below (a step's), as Medusa's runner throws errors[0]:
        # a result transform that trips over a step that never produced output is not the cause.
    out: WorkflowResult[Any] = WorkflowResult(result, txn, run.parent_step_idempotency_key)
    if notify and txn.is_finished and run.parent_step_idempotency_key is None:
        await settle_event_group(run)
    if notify and run.listeners and txn.is_finished:  # a run that stopped to wait has not finished
        await emit(run, "on_finish", state=txn.state.value, result=result,
                   errors=[e.to_dict() for e in txn.errors])
    if throw_on_error and txn.state in _FAILED_STATES:
        raise error_to_raise(txn)
    return out


async def settle_event_group(run: Run) -> None:
    """The events a finished top-level run emitted in its event group (R24): released when it
    ended ``done``, dropped when it was reverted or failed. Only when the run's container has an
    event bus (``Modules.EVENT_BUS``: anything with ``release_grouped_events`` and
    ``clear_grouped_events``) and the run context does not say ``prevent_release_events``. A bus
    error is logged: the run's outcome stands."""
    container = run._container  # (not the property: it would make an empty container per run)
    bus = None if container is None else container.resolve_optional(Modules.EVENT_BUS)
    if bus is None or run.context.get("prevent_release_events"):
        return
    group_id = run.event_group_id
    try:
        if run.txn.state is TransactionState.DONE:
            await bus.release_grouped_events(group_id)
        else:
            await bus.clear_grouped_events(group_id)
    except Exception:
        logger.exception('Settling event group "%s" of workflow "%s" (transaction "%s", %s) failed.', group_id,
                         run.workflow_id, run.transaction_id, run.txn.state.value,
                         extra=log_extra(run.workflow_id, run.transaction_id, run.run_id))
