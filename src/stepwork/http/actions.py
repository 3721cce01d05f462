"""The routes that act: run a workflow, complete or fail a waiting step, retry a step, cancel.

Each waits for the engine at most the app's ``wait_timeout`` (see :mod:`stepwork.http.runtime`):
a run still going then answers an acknowledgement with ``hasFinished: false``, a completion
``{"success": true}`` (it was applied: refusals come before the workflow continues), a cancel the
execution as it is at that moment. These routes take no query parameters (any is a 400).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from stepwork.engine.ids import new_ulid
from stepwork.engine.results import WorkflowResult
from stepwork.engine.step_response import StepResponse
from stepwork.errors import StepworkError
from stepwork.http.errors import no_execution
from stepwork.http.executions import latest_record
from stepwork.http.models import (
    ExecutionOne,
    RunBody,
    RunResponse,
    StepBody,
    StepRetryBody,
    Success,
    acknowledgement_body,
    usable_id,
)
from stepwork.http.params import DETAIL_FIELDS, check_id, select
from stepwork.http.runtime import no_query_parameters, runtime

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(no_query_parameters)])


@router.post("/{workflow_id}/run", response_model=RunResponse, summary="Run a workflow")
async def run_workflow(request: Request, workflow_id: str, body: RunBody) -> JSONResponse:
    """Start a run of the registered workflow ``workflow_id`` with ``input``. The acknowledgement
    says whether it finished within the wait and whether it failed (a failed run is not an HTTP
    error: read the execution for its errors)."""
    check_id(workflow_id, "workflow_id")
    rt = runtime(request)
    transaction_id = body.transaction_id or "auto-" + new_ulid()
    if body.queue:  # stored for a worker (docs/workers.md): the acknowledgement comes at once
        run = rt.engine.run(workflow_id, body.input, transaction_id=transaction_id, queue=True,
                            priority=body.priority, version=body.version)
    elif body.priority:
        raise StepworkError(StepworkError.Types.INVALID_DATA, "priority applies to a queued run: give "
                                                              '"queue": true with it.')
    else:
        run = rt.engine.run(workflow_id, body.input, transaction_id=transaction_id, throw_on_error=False,
                            version=body.version)
    settled, result = await rt.settle(run, f"run {workflow_id}/{transaction_id}")
    if settled:
        assert isinstance(result, WorkflowResult)
        done = result.acknowledgement
        ack = acknowledgement_body(done.workflow_id, done.transaction_id, done.has_finished, done.has_failed,
                                   done.parent_step_idempotency_key)
    else:
        ack = acknowledgement_body(workflow_id, transaction_id, False, False)
    return JSONResponse({"acknowledgement": ack})


def _key(workflow_id: str, body: StepRetryBody) -> str:
    usable_id(workflow_id, "workflow_id")
    return f"{workflow_id}:{body.transaction_id}:{body.step_id}:{body.action}"


@router.post("/{workflow_id}/steps/success", response_model=Success, summary="Complete a waiting step")
async def step_success(request: Request, workflow_id: str, body: StepBody) -> JSONResponse:
    """Set the waiting step's response (a ``StepResponse(response, compensate_input)`` when a
    response is given); the workflow continues."""
    key = _key(workflow_id, body)
    rt = runtime(request)
    response = StepResponse(body.response, body.compensate_input) if body.response is not None else None
    await rt.settle(rt.engine.set_step_success(key, response, throw_on_error=False), f"step success {key}")
    return JSONResponse({"success": True})


@router.post("/{workflow_id}/steps/failure", response_model=Success, summary="Fail a waiting step")
async def step_failure(request: Request, workflow_id: str, body: StepBody) -> JSONResponse:
    """Fail the waiting step with ``response`` as its error; its retry policy applies."""
    key = _key(workflow_id, body)
    rt = runtime(request)
    await rt.settle(rt.engine.set_step_failure(key, body.response, throw_on_error=False), f"step failure {key}")
    return JSONResponse({"success": True})


@router.post("/{workflow_id}/steps/retry", response_model=Success, summary="Retry a waiting step")
async def step_retry(request: Request, workflow_id: str, body: StepRetryBody) -> JSONResponse:
    """Invoke again a step that waits for its response (beyond Medusa)."""
    key = _key(workflow_id, body)
    rt = runtime(request)
    await rt.settle(rt.engine.retry_step(key), f"step retry {key}")
    return JSONResponse({"success": True})


@router.post("/{workflow_id}/{transaction_id}/cancel", response_model=ExecutionOne, summary="Cancel a transaction")
async def cancel_transaction(request: Request, workflow_id: str, transaction_id: str) -> JSONResponse:
    """Compensate the completed steps of an ``invoking`` or ``done`` stored execution (beyond
    Medusa); answers the execution after the cancel."""
    check_id(workflow_id, "workflow_id")
    check_id(transaction_id, "transaction_id")
    rt = runtime(request)
    before = await latest_record(request, workflow_id, transaction_id)
    if before is None:
        raise no_execution(workflow_id, transaction_id)
    settled, result = await rt.settle(rt.engine.cancel(workflow_id, transaction_id),
                                      f"cancel {workflow_id}/{transaction_id}")
    record: dict[str, Any] | None = await latest_record(request, workflow_id, transaction_id)
    if record is None or record["id"] != before["id"]:
        # Not retained once finished: the record as it was, with what the cancel made of it.
        record = dict(before)
        if settled and isinstance(result, WorkflowResult):
            txn = result.transaction
            record.update(state=txn.state.value, execution=txn.execution, context=txn.context)
    return JSONResponse({"workflow_execution": select(record, DETAIL_FIELDS)})
