"""Runs without a store: the implicit engine behind ``wf.run()``, and nested runs kept in memory."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stepwork.container import Container
from stepwork.engine.compiled import CompiledWorkflow
from stepwork.engine.context import StepContext
from stepwork.engine.ids import new_ulid
from stepwork.engine.nesting import child_transaction_id
from stepwork.engine.outcome import error_to_raise, finish
from stepwork.engine.results import WorkflowResult
from stepwork.engine.run import Run
from stepwork.engine.run_events import validate_events
from stepwork.engine.step_response import StepResponse
from stepwork.engine.subscriptions import Listeners
from stepwork.errors import StepworkError
from stepwork.orchestration.states import TransactionState
from stepwork.storage.base import ExecutionKey
from stepwork.storage.serialization import to_jsonable

__all__ = ["MemoryNested", "execute"]


class MemoryNested:
    """The nested runs of one in-memory run, kept here so that it can revert them. Each run has its
    own (a child gets a new one): a child holding its parent's would make a reference cycle per
    child, left to the garbage collector."""

    __slots__ = ("runs",)

    def __init__(self) -> None:
        self.runs: dict[ExecutionKey, Run] = {}

    async def run_child(self, parent: Run, compiled: CompiledWorkflow, value: Any, ctx: StepContext) -> Any:
        """Run the child to its end in memory; its result completes the parent's step."""
        tid = child_transaction_id(parent, ctx.step_name, ctx.attempt)
        parent_key = ctx.idempotency_key
        context = dict(parent.context)
        context.update(transaction_id=tid, event_group_id=parent.event_group_id,
                       parent_step_idempotency_key=parent_key)
        child = Run(compiled, value, transaction_id=tid, run_id=parent.run_id, container=parent._container,
                    context=context, event_group_id=parent.event_group_id,
                    parent_step_idempotency_key=parent_key, nested=MemoryNested(), now=parent.now,
                    listeners=parent.listeners.for_child(compiled.name, tid)
                    if isinstance(parent.listeners, Listeners) else None)
        child.check_storable = parent.check_storable and compiled.plan.store
        await child.drive()
        key = child.key
        self.runs[key] = child
        parent.children.append(key)
        if child.txn.state is not TransactionState.DONE:
            raise error_to_raise(child.txn)
        result = compiled.read_result(child) if not compiled.result_pre else await child.resolve_result(None)
        return StepResponse(result, {"workflow_id": key.workflow_id, "transaction_id": key.transaction_id,
                                     "run_id": key.run_id})

    async def revert_child(self, parent: Run, key: ExecutionKey) -> None:
        """Revert a child that finished ``done``."""
        child = self.runs.get(key)
        if child is None or child.txn.state is not TransactionState.DONE:
            return
        await child.revert()
        if not child.reverted:
            raise error_to_raise(child.txn, handler_type="compensate")


async def execute(compiled: CompiledWorkflow, payload: Any, *, container: Container | None = None,
                  context: Mapping[str, Any] | None = None, transaction_id: str | None = None,
                  throw_on_error: bool = True, result_from: str | None = None,
                  events: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None,
                  listeners: Any = None) -> WorkflowResult[Any]:
    """Run a workflow in memory, start to finish, and return its result (the implicit engine).

    ``listeners`` (an engine's subscriptions view) replaces ``events`` when given.
    """
    if compiled.plan.has_async_steps:
        raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                            f'Workflow "{compiled.name}" has async steps, which wait for a completion from outside: '
                            "run it through a WorkflowEngine (`async with WorkflowEngine() as engine: await "
                            "engine.run(wf, ...)`, or register the engine in the container as "
                            "Modules.WORKFLOW_ENGINE).")
    ctx_dict: dict[str, Any] = dict(context) if context else {}
    if transaction_id is None:
        transaction_id = ctx_dict.get("transaction_id")
    if transaction_id is None:
        ulid = new_ulid()
        transaction_id = "auto-" + ulid
        event_group_id = ctx_dict.get("event_group_id") or ulid
    else:
        if not isinstance(transaction_id, str) or not transaction_id:
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f"transaction_id must be a non-empty string, got {transaction_id!r}.")
        event_group_id = ctx_dict.get("event_group_id") or new_ulid()
    ctx_dict["transaction_id"] = transaction_id
    ctx_dict["event_group_id"] = event_group_id
    if listeners is None:
        listeners = validate_events(events) if events else None
    if result_from is not None:
        compiled.plan.step(result_from)  # unknown step name: a clear error before running
    run = Run(compiled, payload, transaction_id=transaction_id, run_id=new_ulid(), container=container,
              context=ctx_dict, event_group_id=event_group_id, listeners=listeners, nested=MemoryNested())
    if compiled.plan.store:
        # The same payload rule as the engine's: what it could not store is refused here too.
        to_jsonable(payload, f'The input of workflow "{compiled.name}"')
        run.check_storable = True
    await run.drive()
    return await finish(run, throw_on_error=throw_on_error, result_from=result_from)
