"""Worker health (beyond Medusa): the engines sharing the database, from their heartbeats."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from stepwork.http.models import WorkerList
from stepwork.http.params import single_values
from stepwork.http.runtime import runtime

__all__ = ["router"]

router = APIRouter()


@router.get("/admin/workers", response_model=WorkerList, summary="Workers and their health")
async def list_workers(request: Request) -> JSONResponse:
    """Every engine (``stepwork worker``, ``stepwork serve``, or any started ``WorkflowEngine``)
    seen on this database in the last day, most recent heartbeat first: its status (``alive``,
    ``stopped``, or ``gone`` when silent for longer than its ``lease_ttl``), last heartbeat, the
    executions whose lease it holds, its concurrency, and the workflow versions its process defines."""
    single_values(request.query_params.multi_items(), ())
    return JSONResponse({"workers": await runtime(request).engine.list_workers()})
