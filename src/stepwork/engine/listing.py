"""Reading stored executions: list (filtered, paged, ordered), retrieve one, and retention cleanup."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stepwork.engine.heartbeat import live_definitions
from stepwork.engine.records import WorkflowExecution, assemble
from stepwork.errors import StepworkError
from stepwork.storage.base import ExecutionKey, ExecutionRow, ListQuery
from stepwork.storage.query import normalize_filters, normalize_order

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine

__all__ = ["assemble_row", "list_and_count", "retrieve"]

_INVALID = StepworkError.Types.INVALID_DATA


async def assemble_row(engine: WorkflowEngine, row: ExecutionRow) -> WorkflowExecution:
    """The full record of a stored execution: its row, its step rows and its definition's template."""
    return assemble(row, await engine.store.steps(row.key), await engine.definitions.record(row.definition_hash))


async def list_and_count(engine: WorkflowEngine, filters: Mapping[str, Any] | None, skip: int, take: int | None,
                         order: Any, *, records: bool = True) -> tuple[list[WorkflowExecution], int]:
    """See :meth:`WorkflowEngine.list_and_count_workflow_executions`.

    ``records=False`` reads the execution rows only: the executions' ``execution`` and ``context``
    are ``None`` (neither their columns, their step rows nor their definition's template are read),
    for callers that answer with the other fields (the HTTP list route's defaults)."""
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
        raise StepworkError(_INVALID, f"skip must be an integer >= 0, got {skip!r}.")
    if take is not None and (isinstance(take, bool) or not isinstance(take, int) or take < 0):
        raise StepworkError(_INVALID, f"take must be an integer >= 0 or None, got {take!r}.")
    normalized = normalize_filters(filters)
    if "stale" in normalized:  # resolved against the workers alive now
        names, hashes = await live_definitions(engine)
        normalized["stale"] = [(op, (flag, sorted(names), sorted(hashes))) for op, flag in normalized["stale"]]
    query = ListQuery(normalized, skip, take, normalize_order(order), records)
    rows, count = await engine.store.list_rows(query)
    if not records:
        return [WorkflowExecution(row, None, None) for row in rows], count
    return [await assemble_row(engine, row) for row in rows], count


async def retrieve(engine: WorkflowEngine, id: str | Mapping[str, str]) -> WorkflowExecution:
    """See :meth:`WorkflowEngine.retrieve_workflow_execution`."""
    if isinstance(id, Mapping):
        try:
            key = ExecutionKey(str(id["workflow_id"]), str(id["transaction_id"]), str(id["run_id"]))
        except KeyError as exc:
            raise StepworkError(_INVALID, f"Missing {exc.args[0]!r} in the execution key {dict(id)!r}.") from None
        row = await engine.store.get(key)
    elif isinstance(id, str):
        row = await engine.store.get_by_id(id)
    else:
        raise StepworkError(_INVALID, f"An execution id is a string, got {id!r}.")
    if row is None:
        raise StepworkError(StepworkError.Types.NOT_FOUND, f"Workflow execution {id!r} was not found.")
    return await assemble_row(engine, row)
