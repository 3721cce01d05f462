"""Stored runs: a new execution made ready for its first checkpoint, a stored one loaded back, and
the lease that lets this engine drive it."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from stepwork.engine.checkpoint import StoredCheckpointer
from stepwork.engine.compiled import CompiledWorkflow
from stepwork.engine.definitions import stale_error
from stepwork.engine.ids import new_ulid
from stepwork.engine.persistence import apply_progress, restore_outputs
from stepwork.engine.run import Run
from stepwork.engine.subscriptions import Listeners
from stepwork.errors import StepworkError
from stepwork.orchestration.states import TransactionState
from stepwork.storage.base import ExecutionKey, ExecutionRow
from stepwork.storage.serialization import to_jsonable

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine

__all__ = ["FINISHED", "acquire", "checkpointer", "create", "load", "not_found"]

FINISHED = ("done", "failed", "reverted")


def not_found(transaction_id: str) -> StepworkError:
    """The error for an execution that is not stored (Medusa's words)."""
    return StepworkError(StepworkError.Types.NOT_FOUND, f"Transaction {transaction_id} could not be found.")


def checkpointer(run: Run) -> StoredCheckpointer:
    """The checkpointer of a stored run."""
    cp = run.cp
    if cp is None:
        raise StepworkError(StepworkError.Types.UNEXPECTED_STATE, f"Run {run.transaction_id} is not stored.")
    return cp


def _stored_run(engine: WorkflowEngine, compiled: CompiledWorkflow, payload: Any, *, transaction_id: str,
                run_id: str, context: dict[str, Any], event_group_id: str, execution_id: str,
                parent_key: str | None, listeners: Any) -> Run:
    run = Run(compiled, payload, transaction_id=transaction_id, run_id=run_id, container=engine.container,
              context=context, event_group_id=event_group_id, parent_step_idempotency_key=parent_key,
              listeners=listeners, nested=engine.nested, now=engine.clock.time)
    run.cp = StoredCheckpointer(engine, run, execution_id)
    return run


async def create(engine: WorkflowEngine, compiled: CompiledWorkflow, payload: Any, transaction_id: str,
                 ctx: dict[str, Any], event_group_id: str, listeners: Any, parent_key: str | None = None) -> Run:
    """A new stored execution; its row is inserted by its first checkpoint, in the same commit as
    its first step's start."""
    payload_json = to_jsonable(payload, f'The input of workflow "{compiled.name}"')
    run = _stored_run(engine, compiled, payload, transaction_id=transaction_id, run_id=new_ulid(), context=ctx,
                      event_group_id=event_group_id, execution_id="wf_exec_" + new_ulid(), parent_key=parent_key,
                      listeners=listeners)
    now = engine.clock.time()
    definition_hash = await engine.definitions.store(compiled, now)
    cp = checkpointer(run)
    cp.has_timers = False  # until it arms one
    cp.pending_row = ExecutionRow(
        id=cp.execution_id, workflow_id=compiled.name, transaction_id=transaction_id, run_id=run.run_id,
        state=TransactionState.NOT_STARTED.value, execution=None, definition_hash=definition_hash,
        context={"data": {"payload": payload_json, "invoke": {}, "compensate": {}}, "errors": []},
        retention_time=compiled.plan.options.retention_time, created_at=now, updated_at=now, version=0,
        lease_owner=engine.owner, lease_expires_at=now + engine.lease_ttl, progress=None)
    return run


async def load(engine: WorkflowEngine, compiled: CompiledWorkflow, row: ExecutionRow, version: int,
               listeners: Any = None, *, fresh: bool = False) -> Run:
    """The run of a stored execution, as its rows say (``version``: the lease just taken; ``fresh``:
    ``row`` was read after it was taken)."""
    if not fresh:
        # Read again: the row given may be older than the lease just taken (another process may
        # have advanced the execution meanwhile).
        again = await engine.store.get(row.key)
        if again is None:
            raise not_found(row.transaction_id)
        row = again
    if row.definition_hash is not None and row.definition_hash != engine.definitions.template(compiled)[0]:
        raise stale_error(row)  # never run on another graph than the one it started on
    progress = row.progress
    metadata = progress.get("metadata") or {}
    payload = (row.context or {}).get("data", {}).get("payload")
    if listeners is None:
        listeners = Listeners(engine.subscriptions, row.workflow_id, row.transaction_id, None)
    run = _stored_run(engine, compiled, payload, transaction_id=row.transaction_id, run_id=row.run_id,
                      context=dict(progress.get("context") or {}),
                      event_group_id=metadata.get("eventGroupId") or new_ulid(), execution_id=row.id,
                      parent_key=metadata.get("parentStepIdempotencyKey"), listeners=listeners)
    apply_progress(run.txn, progress, row.state)
    if row.state != TransactionState.NOT_STARTED.value:  # (no step row before its first checkpoint)
        restore_outputs(compiled, run.txn, await engine.store.steps(row.key))
    cp = checkpointer(run)
    cp.version = version
    cp.stored_state = row.state
    run.children = [ExecutionKey(*k) for k in progress.get("children") or []]
    return run


async def acquire(engine: WorkflowEngine, row: ExecutionRow, *, wait: bool) -> int:
    """Take the lease of ``row``'s execution (waiting up to ``lease_ttl`` for its holder if ``wait``);
    the new version. ``conflict`` if another holds it, ``not_allowed`` if it finished meanwhile."""
    deadline = time.monotonic() + (engine.lease_ttl if wait else 0)
    delay = 0.005
    while True:
        now = engine.clock.time()
        version = await engine.store.acquire(row.key, engine.owner, now + engine.lease_ttl, now)
        if version is not None:
            return version
        current = await engine.store.get(row.key)
        if current is None:
            raise not_found(row.transaction_id)
        if current.state in FINISHED:  # finished by whoever held it meanwhile
            raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                                f'Transaction {row.transaction_id} has already finished ("{current.state}"); '
                                "a finished execution never changes again.")
        if time.monotonic() >= deadline:
            raise StepworkError(StepworkError.Types.CONFLICT,
                                f"Transaction already started for transaction_id: {row.transaction_id}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)
