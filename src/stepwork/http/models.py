"""The bodies of the HTTP API as pydantic models: what requests are validated against, and what
``/openapi.json`` says responses are (Medusa's shapes)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stepwork.errors import StepworkError
from stepwork.http.params import MAX_ID, check_id

__all__ = ["Acknowledgement", "ErrorBody", "ExecutionList", "ExecutionOne", "Health", "RunBody", "RunResponse",
           "StepBody", "StepRetryBody", "Success", "WorkerList", "WorkerOut", "WorkflowExecutionOut",
           "WorkflowVersionOut", "acknowledgement_body", "usable_id"]

_Id = Field(min_length=1, max_length=MAX_ID)


def usable_id(value: str, what: str) -> str:
    """``value`` if it can be part of a step's idempotency key (``workflow:transaction:step:action``):
    a usable id (:func:`~stepwork.http.params.check_id`) without ``":"``; else ``invalid_data``."""
    check_id(value, what)
    if ":" in value:
        raise StepworkError(StepworkError.Types.INVALID_DATA, f'{what} must not contain ":".')
    return value


def _usable_id(value: str) -> str:
    try:
        return usable_id(value, "an id")
    except StepworkError as exc:
        raise ValueError(exc.message) from None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every error: a stable ``type`` (``invalid_data``, ``unauthorized``, ``not_found``…) and a message."""

    type: str
    message: str


class WorkflowExecutionOut(BaseModel):
    """A stored execution; which keys are present depends on ``fields`` (``id`` always is)."""

    id: str
    workflow_id: str | None = None
    transaction_id: str | None = None
    run_id: str | None = None
    state: str | None = None
    execution: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    retention_time: float | None = None
    created_at: str | None = Field(None, description="ISO-8601")
    updated_at: str | None = Field(None, description="ISO-8601")
    deleted_at: str | None = Field(None, description="ISO-8601")


class ExecutionList(BaseModel):
    """A page of stored executions."""

    workflow_executions: list[WorkflowExecutionOut]
    count: int
    offset: int
    limit: int


class WorkflowVersionOut(BaseModel):
    """A workflow version a worker's process defines."""

    workflow_id: str
    version: str


class WorkerOut(BaseModel):
    """An engine sharing the database, as its heartbeats show it."""

    id: str = Field(description="the engine's owner id (host:pid:ulid), as in execution leases")
    host: str
    pid: int
    status: Literal["alive", "stopped", "gone"] = Field(
        description="gone: silent for longer than its lease_ttl (its executions are taken over)")
    concurrency: int = Field(description="queued runs it drives at once (0: it claims none)")
    lease_ttl: float
    started_at: str | None
    last_heartbeat_at: str | None
    seconds_since_heartbeat: float
    stopped_at: str | None
    executions_owned: int = Field(description="unfinished executions whose lease it holds")
    workflows: list[WorkflowVersionOut]


class WorkerList(BaseModel):
    """The workers seen in the last day."""

    workers: list[WorkerOut]


class ExecutionOne(BaseModel):
    """One stored execution."""

    workflow_execution: WorkflowExecutionOut


class RunBody(_Body):
    """``POST …/{workflow_id}/run``: the workflow's input, and optionally its transaction id; beyond
    Medusa, ``queue`` (store the run for a worker and answer at once) and its ``priority``, and the
    workflow ``version`` to start (default: the one defined last)."""

    input: Any = None
    transaction_id: str | None = Field(None, min_length=1, max_length=MAX_ID)
    queue: bool = False
    priority: int = 0
    version: str | None = Field(None, min_length=1, max_length=100)

    @field_validator("transaction_id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        return None if value is None else _usable_id(value)


class Acknowledgement(BaseModel):
    """Whether the run has finished (within the wait), and whether it failed: Medusa's wire shape, in
    camelCase (the Python API's ``WorkflowResult.acknowledgement`` keeps snake_case).
    ``parentStepIdempotencyKey`` is present only for a run started by a parent's step."""

    workflowId: str  # (Medusa's field names)
    transactionId: str
    hasFinished: bool
    hasFailed: bool
    parentStepIdempotencyKey: str | None = None


def acknowledgement_body(workflow_id: str, transaction_id: str, has_finished: bool, has_failed: bool,
                         parent_step_idempotency_key: str | None = None) -> dict[str, Any]:
    """An acknowledgement as the run route answers it (Medusa's camelCase keys)."""
    body: dict[str, Any] = {"workflowId": workflow_id, "transactionId": transaction_id,
                            "hasFinished": has_finished, "hasFailed": has_failed}
    if parent_step_idempotency_key is not None:
        body["parentStepIdempotencyKey"] = parent_step_idempotency_key
    return body


class RunResponse(BaseModel):
    """The run's acknowledgement."""

    acknowledgement: Acknowledgement


class StepRetryBody(_Body):
    """The step of a transaction: ``transaction_id``, ``step_id``, ``action`` (``invoke`` by default)."""

    transaction_id: str = _Id
    step_id: str = _Id
    action: Literal["invoke", "compensate"] = "invoke"

    @field_validator("action", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("transaction_id", "step_id")
    @classmethod
    def _ids(cls, value: str) -> str:
        return _usable_id(value)


class StepBody(StepRetryBody):
    """``steps/success`` and ``steps/failure``: the step, and what it answers (``response``; for a
    success, ``compensate_input`` too)."""

    response: Any = None
    compensate_input: Any = None


class Success(BaseModel):
    """``{"success": true}``."""

    success: bool


class Health(BaseModel):
    """The server is up and its engine started."""

    status: Literal["ok"]
