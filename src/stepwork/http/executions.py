"""The reading routes: list stored executions, one by id, the latest run of a transaction."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from stepwork.errors import StepworkError
from stepwork.http.models import ExecutionList, ExecutionOne
from stepwork.http.params import (
    DETAIL_FIELDS,
    MAX_ID,
    MAX_LIMIT,
    MAX_OFFSET,
    check_id,
    parse_fields,
    parse_list_query,
    select,
    single_values,
)
from stepwork.http.record_cache import record_response
from stepwork.http.runtime import runtime

__all__ = ["latest_record", "router"]

router = APIRouter()
_Ids = Annotated[list[Annotated[str, Query(max_length=MAX_ID)]] | None, Query()]


@router.get("", response_model=ExecutionList, summary="List stored executions")
async def list_executions(
        request: Request,
        q: Annotated[str | None, Query(max_length=MAX_ID, description="case-insensitive search in workflow id, "
                                                                       "transaction id, state, run id")] = None,
        workflow_id: _Ids = None, transaction_id: _Ids = None, state: _Ids = None,
        fields: Annotated[str | None, Query(description="a,b replaces the defaults; +a / -a adjusts them")] = None,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        limit: Annotated[int, Query(ge=0, le=MAX_LIMIT)] = 100,
        order: Annotated[str | None, Query(description="created_at, -created_at, ... (comma-separated)")] = None,
        stale: Annotated[Literal["true", "false"] | None,
                         Query(description="true: only unfinished executions whose workflow version no live "
                                           "worker has (beyond Medusa)")] = None,
) -> JSONResponse:
    """Stored executions, filtered, paged and ordered as Medusa's list route: the declared
    parameters, plus ``created_at[$gt]=...``-style operators (``$eq $ne $in $nin $gt $gte $lt
    $lte``) on ``created_at``, ``updated_at`` and the id filters."""
    params = parse_list_query(request.query_params.multi_items())
    # The records (execution, context) are assembled from step rows and templates: only when asked for.
    records = "execution" in params.fields or "context" in params.fields
    rows, count = await runtime(request).engine.list_and_count_workflow_executions(
        params.filters, skip=params.offset, take=params.limit, order=params.order, records=records)
    return JSONResponse({"workflow_executions": [select(r.to_dict(), params.fields) for r in rows],
                         "count": count, "offset": params.offset, "limit": params.limit})


async def latest_record(request: Request, workflow_id: str, transaction_id: str) -> dict[str, Any] | None:
    """The record of a transaction's latest run, or ``None``."""
    rows = await runtime(request).engine.list_workflow_executions(
        {"workflow_id": workflow_id, "transaction_id": transaction_id}, take=1,
        order={"created_at": "DESC", "run_id": "DESC"})
    return rows[0].to_dict() if rows else None


def _only_fields(request: Request) -> str | None:
    return single_values(request.query_params.multi_items(), ("fields",)).get("fields")


@router.get("/{id}", response_model=ExecutionOne, summary="Retrieve a stored execution")
async def retrieve_execution(request: Request, id: str,
                             fields: Annotated[str | None, Query()] = None) -> Response:
    """One stored execution by its ``wf_exec_…`` id (a finished one with an ``ETag``)."""
    check_id(id, "The execution id")
    chosen = parse_fields(_only_fields(request), DETAIL_FIELDS)
    engine = runtime(request).engine
    row = await engine.store.get_by_id(id)
    if row is None:
        raise StepworkError(StepworkError.Types.NOT_FOUND, f"Workflow execution {id!r} was not found.")
    return await record_response(request, engine, row, chosen)


@router.get("/{workflow_id}/{transaction_id}", response_model=ExecutionOne,
            summary="Retrieve the latest run of a transaction")
async def retrieve_latest(request: Request, workflow_id: str, transaction_id: str,
                          fields: Annotated[str | None, Query()] = None) -> Response:
    """The latest run of ``transaction_id`` of ``workflow_id`` (a finished one with an ``ETag``)."""
    check_id(workflow_id, "workflow_id")
    check_id(transaction_id, "transaction_id")
    chosen = parse_fields(_only_fields(request), DETAIL_FIELDS)
    engine = runtime(request).engine
    row = await engine.store.latest(workflow_id, transaction_id)
    if row is None:
        raise StepworkError(StepworkError.Types.NOT_FOUND,
                            f'Workflow "{workflow_id}" has no stored execution with transaction id '
                            f'"{transaction_id}".')
    return await record_response(request, engine, row, chosen)
