"""``engine.run``: a new execution, a waiting one resumed, or a finished idempotent one's result."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from stepwork.container import Container
from stepwork.engine.compiled import CompiledWorkflow
from stepwork.engine.ids import new_ulid
from stepwork.engine.in_memory import execute
from stepwork.engine.log_fields import log_extra
from stepwork.engine.outcome import finish
from stepwork.engine.queue import enqueue, queued_options, queued_result
from stepwork.engine.registry import Runnable, get_workflow
from stepwork.engine.results import WorkflowResult
from stepwork.engine.run_events import validate_events
from stepwork.engine.stored_runs import FINISHED, acquire, create, load
from stepwork.engine.subscriptions import Listeners
from stepwork.errors import StepworkError
from stepwork.storage.base import ExecutionRow
from stepwork.storage.serialization import to_jsonable

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine

__all__ = ["run"]

logger = logging.getLogger("stepwork.engine")
_INVALID = StepworkError.Types.INVALID_DATA


async def run(engine: WorkflowEngine, workflow_or_id: Runnable | str, input: Any = None, *,
              transaction_id: str | None = None, context: Mapping[str, Any] | None = None,
              throw_on_error: bool = True, events: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None,
              result_from: str | None = None, container: Container | None = None, queue: bool = False,
              priority: int = 0, version: str | None = None) -> WorkflowResult[Any]:
    """See :meth:`WorkflowEngine.run`."""
    if version is not None and not isinstance(version, str):
        raise StepworkError(_INVALID, f"version must be a string (a workflow's version option), got {version!r}.")
    if isinstance(workflow_or_id, str):
        workflow = get_workflow(workflow_or_id, version)
    else:
        workflow = workflow_or_id
        if version is not None and hasattr(workflow, "name"):
            workflow = get_workflow(workflow.name, version)
    if not hasattr(workflow, "compiled"):
        raise StepworkError(_INVALID, f"run() takes a workflow or a workflow's name, got {workflow_or_id!r}.")
    compiled = workflow.compiled
    if queue:
        priority = queued_options(events, result_from, priority)
    per_run = validate_events(events) if events else None
    if result_from is not None:
        compiled.plan.step(result_from)
    ctx = dict(context) if context else {}
    if transaction_id is None:
        transaction_id = ctx.get("transaction_id")
    explicit = transaction_id is not None
    if transaction_id is None:
        ulid = new_ulid()
        transaction_id = "auto-" + ulid
        event_group_id = ctx.get("event_group_id") or ulid
    else:
        if not isinstance(transaction_id, str) or not transaction_id or ":" in transaction_id:
            raise StepworkError(_INVALID, "transaction_id must be a non-empty string without \":\", "
                                          f"got {transaction_id!r}.")
        event_group_id = ctx.get("event_group_id") or new_ulid()
    ctx["transaction_id"] = transaction_id
    ctx["event_group_id"] = event_group_id
    listeners = Listeners(engine.subscriptions, compiled.name, transaction_id, per_run)
    if not compiled.plan.store and not queue:  # (queuing stores the run: another process may drive it)
        return await execute(compiled, input, container=container or engine.container, context=ctx,
                             transaction_id=transaction_id, throw_on_error=throw_on_error,
                             result_from=result_from, listeners=listeners)
    if explicit and engine.busy(compiled.name, transaction_id):
        # Another call of this process drives it now. A finished idempotent execution's result is
        # still what every caller gets; anything else is running: a conflict (Medusa's answer).
        existing = await engine.store.latest(compiled.name, transaction_id)
        if existing is not None and existing.state in FINISHED and compiled.plan.options.idempotent:
            return await _stored_result(engine, engine.definitions.compiled_for(existing), existing, listeners,
                                        throw_on_error, result_from)
        raise StepworkError(StepworkError.Types.CONFLICT,
                            f"Transaction already started for transaction_id: {transaction_id}")
    async with engine.locked(compiled.name, transaction_id):
        if explicit:
            existing = await engine.store.latest(compiled.name, transaction_id)
            if existing is not None:
                if existing.state not in FINISHED and queue:  # queued or running already: once is enough
                    return await queued_result(engine, compiled, existing)
                if existing.state not in FINISHED:
                    _warn_if_other_input(compiled, existing, input)
                    # It goes on on the version it started with, whichever this call named.
                    return await _resume(engine, engine.definitions.compiled_for(existing), existing,
                                         listeners=listeners, throw_on_error=throw_on_error, result_from=result_from)
                if compiled.plan.options.idempotent:
                    return await _stored_result(engine, engine.definitions.compiled_for(existing), existing,
                                                listeners, throw_on_error, result_from)
        if queue:
            return await enqueue(engine, compiled, input, transaction_id, ctx, event_group_id, listeners, priority)
        new = await create(engine, compiled, input, transaction_id, ctx, event_group_id, listeners)
        await engine.drive(new)
        return await finish(new, throw_on_error=throw_on_error, result_from=result_from)


def _warn_if_other_input(compiled: CompiledWorkflow, row: ExecutionRow, input: Any) -> None:
    if input is None:
        return
    stored = (row.context or {}).get("data", {}).get("payload")
    try:
        given = to_jsonable(input, f'The input of workflow "{compiled.name}"')
    except StepworkError:
        given = input
    if given != stored:
        logger.warning('Transaction "%s" of workflow "%s" is unfinished: it continues with its stored input, and '
                       "the different input given to this run call is not used.", row.transaction_id, compiled.name,
                       extra=log_extra(row.workflow_id, row.transaction_id, row.run_id))


async def _resume(engine: WorkflowEngine, compiled: CompiledWorkflow, row: ExecutionRow, *, listeners: Any,
                  throw_on_error: bool, result_from: str | None) -> WorkflowResult[Any]:
    stored = await load(engine, compiled, row, await acquire(engine, row, wait=False), listeners)
    stored.reason = "run"
    await engine.drive(stored)
    return await finish(stored, throw_on_error=throw_on_error, result_from=result_from)


async def _stored_result(engine: WorkflowEngine, compiled: CompiledWorkflow, row: ExecutionRow, listeners: Any,
                         throw_on_error: bool, result_from: str | None) -> WorkflowResult[Any]:
    stored = await load(engine, compiled, row, row.version, listeners)
    # A replay of a finished execution: its on_finish was told when it finished.
    return await finish(stored, throw_on_error=throw_on_error, result_from=result_from, notify=False)
