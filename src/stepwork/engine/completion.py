"""Completing a waiting step from outside: ``set_step_success``, ``set_step_failure``, ``retry_step``.

The three share one path: parse the idempotency key, lock the transaction, read it again, take its
lease, load it, check the request against the step's state (a refusal gives the lease back), apply
it, and drive the run on in the same call.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from stepwork.engine import recovery
from stepwork.engine.compiled import CompiledWorkflow
from stepwork.engine.log_fields import log_extra
from stepwork.engine.outcome import finish
from stepwork.engine.registry import get_workflow, workflow_versions
from stepwork.engine.results import WorkflowResult
from stepwork.engine.step_response import StepResponse
from stepwork.engine.stored_runs import FINISHED, acquire, checkpointer, load, not_found
from stepwork.errors import StepworkError
from stepwork.orchestration.states import StepState, StepStatus
from stepwork.orchestration.transaction import FailureOutcome

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine
    from stepwork.engine.run import Run

__all__ = ["complete", "parse_idempotency_key"]

_INVALID = StepworkError.Types.INVALID_DATA
logger = logging.getLogger("stepwork.engine")

# What a completion does to the loaded run: (run, step index, action) -> nothing, or raise to refuse.
Apply = Callable[["Run", int, str], Any]


def parse_idempotency_key(key: str | Mapping[str, Any]) -> tuple[str, str, str, str]:
    """``(workflow_id, transaction_id, step_name, action)`` of a key string or mapping."""
    if isinstance(key, Mapping):
        parts = [key.get("workflow_id"), key.get("transaction_id"), key.get("step_id"), key.get("action", "invoke")]
    elif isinstance(key, str):
        parts = key.split(":")
        if len(parts) != 4:
            raise StepworkError(_INVALID, f'Invalid idempotency key "{key}": expected '
                                          '"workflow_id:transaction_id:step_name:invoke|compensate".')
    else:
        raise StepworkError(_INVALID, f"An idempotency key is a string or a mapping, got {key!r}.")
    if not all(isinstance(p, str) and p for p in parts):
        raise StepworkError(_INVALID, f"Invalid idempotency key {key!r}: workflow_id, transaction_id and step_id "
                                      "must be non-empty strings.")
    action = str(parts[3]).lower()
    if action not in ("invoke", "compensate"):
        raise StepworkError(_INVALID, f'Invalid idempotency key {key!r}: action must be "invoke" or "compensate".')
    return str(parts[0]), str(parts[1]), str(parts[2]), action


async def complete(engine: WorkflowEngine, idempotency_key: str | Mapping[str, Any], apply: Apply, *,
                   throw_on_error: bool, attempt: int | None = None) -> WorkflowResult[Any]:
    """The shared path of the three completions; ``apply`` changes the loaded run (or refuses).

    ``attempt``: the completion comes from the engine itself (a background step's task, a nested
    run) for that invoke attempt; if the step has left it meanwhile (it was invoked again, timed
    out, or the workflow is compensating), the completion is dropped and the run is left as it is.
    """
    workflow_id, transaction_id, step_name, action = parse_idempotency_key(idempotency_key)
    get_workflow(workflow_id)  # not_found, with the advice to import it, before the database is read
    if not any(_has_step(wf.compiled, step_name) for wf in workflow_versions(workflow_id).values()):
        raise _no_action(workflow_id, step_name)
    row = await engine.store.latest(workflow_id, transaction_id)
    if row is None:
        raise not_found(transaction_id)
    compiled = engine.definitions.compiled_for(row)  # the version it started on
    if not _has_step(compiled, step_name):
        raise _no_action(workflow_id, step_name)
    index = compiled.plan.step(step_name).index
    async with engine.locked(workflow_id, transaction_id):
        latest = await engine.store.get(row.key)
        if latest is None:
            raise not_found(transaction_id)
        if latest.state in FINISHED:
            raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                                f'Transaction {transaction_id} has already finished ("{latest.state}"); a finished '
                                "execution never changes again.")
        # Taken from an owner that stopped (its lease ran out), or a queued run that never began: if
        # this completion is refused or dropped, the run still needs driving on, not an empty lease.
        adopted = latest.lease_owner is not None and latest.lease_owner != engine.owner
        queued = latest.state == "not_started"
        run = await load(engine, compiled, latest, await acquire(engine, latest, wait=True))
        if attempt is not None and not _still_waiting(run, index, attempt):
            await _give_back(engine, run, adopted, queued)
            logger.info("Dropped a late completion of step %s (attempt %s) of %s/%s: the step has moved on.",
                        step_name, attempt, workflow_id, transaction_id,
                        extra=log_extra(workflow_id, transaction_id, run.run_id, run.txn.plan.steps[index].id))
            return await finish(run, throw_on_error=False, result_from=None, notify=False)
        async with _refusal_gives_back(engine, run, adopted, queued):
            await apply(run, index, action)
        checkpointer(run).dirty.add(index)
        await engine.drive(run)
        return await finish(run, throw_on_error=throw_on_error, result_from=None)


def _has_step(compiled: CompiledWorkflow, step_name: str) -> bool:
    try:
        compiled.plan.step(step_name)
    except StepworkError:
        return False
    return True


def _no_action(workflow_id: str, step_name: str) -> StepworkError:
    return StepworkError(StepworkError.Types.NOT_FOUND,
                         f'Action not found: workflow "{workflow_id}" has no step "{step_name}".')


def _still_waiting(run: Run, i: int, attempt: int) -> bool:
    txn = run.txn
    return (txn.inv_state[i] is StepState.INVOKING and txn.waiting[i] and txn.attempts[i] == attempt
            and txn.comp_state[i] is StepState.DORMANT)


@contextlib.asynccontextmanager
async def _refusal_gives_back(engine: WorkflowEngine, run: Run, adopted: bool,
                              queued: bool) -> AsyncIterator[None]:
    """A request refused after the lease was taken gives the lease back (else the execution would
    stay locked while this engine lives)."""
    try:
        yield
    except BaseException:
        await _give_back(engine, run, adopted, queued)
        raise


async def _give_back(engine: WorkflowEngine, run: Run, adopted: bool, queued: bool) -> None:
    """Leave a run this completion did not change. One at rest (waiting for this or another
    completion, or a timer) needs no owner: its lease is released. One ``adopted`` from a stopped
    owner (a step was in flight) is driven on at once, as recovery would; a queued one that never
    began goes back in the queue. Released, either would be stranded: recovery looks for expired
    leases, not missing ones, and the claim loop for queued runs."""
    if queued:
        await engine.store.abandon(run.key, engine.owner)
        await engine.store.requeue_abandoned(engine.owner, engine.clock.time())
    elif adopted:
        engine.track(recovery.recover_execution(engine, run.key), f"stepwork-adopt-{run.transaction_id}")
    else:
        await engine.store.release(run.key, engine.owner)


def check_action(run: Run, i: int, action: str, what: str) -> None:
    """Refuse a completion for the wrong phase, or for a step that does not wait."""
    txn = run.txn
    compensating = txn.comp_state[i] is StepState.COMPENSATING
    if action == "invoke" and compensating:
        raise StepworkError(_INVALID, "Incorrect action type: the step is compensating; use action \"compensate\".")
    if action == "compensate" and not compensating:
        if txn.inv_state[i] is StepState.INVOKING:
            raise StepworkError(_INVALID, "Incorrect action type: the step is invoking; use action \"invoke\".")
        raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                            f"Cannot set step {what} when status is {txn.comp_status[i]}")


def succeed(step_response: Any) -> Apply:
    """``set_step_success``: the step (or compensation) completes with ``step_response``."""
    if isinstance(step_response, StepResponse):
        output, comp = step_response.output, step_response.compensate_input
    else:
        output, comp = step_response, None

    async def apply(run: Run, i: int, action: str) -> None:
        check_action(run, i, action, "success")
        txn = run.txn
        if action == "invoke":
            checkpointer(run).encode(i, output, comp)
            txn.complete_waiting(i, output, comp)
            event = "on_step_success"
        else:
            txn.complete_compensation_waiting(i, output)
            event = "on_compensate_step_success"
        run.after_resume.append((event, {"step": i, "response": output}))
    return apply


def fail(error: Any, force_permanent_failure: bool) -> Apply:
    """``set_step_failure``: the step (or compensation) fails; its retry policy applies unless forced."""
    async def apply(run: Run, i: int, action: str) -> None:
        check_action(run, i, action, "failure")
        txn = run.txn
        if action != "invoke":
            txn.fail_compensation_waiting(i, error, permanent=force_permanent_failure)
            return
        outcome = txn.fail_waiting(i, error, permanent=force_permanent_failure)
        if outcome is FailureOutcome.RETRY:
            delay = run.retry_wait(i)
            if delay > 0:
                await checkpointer(run).arm_retry(i, delay, "retry")
        else:
            run.after_resume.append(("on_step_failure", {"step": i, "errors": [txn.errors[-1].to_dict()]}))
    return apply


async def retry(run: Run, i: int, action: str) -> None:
    """``retry_step``: invoke again a step that waits for its response."""
    txn = run.txn
    if txn.inv_status[i] is not StepStatus.WAITING_RESPONSE or txn.inv_state[i] is not StepState.INVOKING:
        shown = txn.inv_status[i] if txn.inv_state[i] is StepState.INVOKING else txn.inv_state[i]
        raise StepworkError(StepworkError.Types.NOT_ALLOWED, f"Cannot retry step when status is {shown}")
    txn.waiting[i] = False
