"""Shared by the SQL stores: records as JSON text, execution rows from selected columns, and the
error a fenced-out write raises."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from stepwork.errors import StepworkError
from stepwork.storage.base import ExecutionKey, ExecutionRow, LeaseLostError

__all__ = ["FINISHED", "already_started", "execution_row", "json_text", "lease_lost", "listed_row"]

FINISHED = ("done", "failed", "reverted")  # the states a run never leaves


def json_text(value: Any) -> str | None:
    """JSON text of a record (already-encoded text is kept)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def execution_row(r: Sequence[Any], with_records: bool = True) -> ExecutionRow:
    """An :class:`ExecutionRow` from the columns id, workflow_id, transaction_id, run_id, state,
    execution, context, retention_time, created_at, updated_at, deleted_at, version, lease_owner,
    lease_expires_at, progress, definition_hash (times as epoch seconds)."""
    return ExecutionRow(
        id=r[0], workflow_id=r[1], transaction_id=r[2], run_id=r[3], state=r[4],
        execution=json.loads(r[5]) if with_records and r[5] is not None else None,
        context=json.loads(r[6]) if with_records and r[6] is not None else None,
        retention_time=r[7], created_at=r[8], updated_at=r[9], deleted_at=r[10], version=int(r[11]),
        lease_owner=r[12], lease_expires_at=r[13], progress=json.loads(r[14]) if r[14] else {},
        definition_hash=r[15] if len(r) > 15 else None,
    )


def listed_row(r: Sequence[Any], with_records: bool) -> ExecutionRow:
    """:func:`execution_row` for a listing: a document column that is not JSON (a row edited by hand)
    reads as absent instead of failing the whole listing; reading that execution on its own still
    raises, and the engine fails such an execution when it tries to run it."""
    try:
        return execution_row(r, with_records)
    except (ValueError, RecursionError):
        return execution_row([*r[:5], _or_none(r[5]) if with_records else None,
                              _or_none(r[6]) if with_records else None, *r[7:14], _or_none(r[14]), *r[15:]],
                             with_records)


def _or_none(text: Any) -> Any:
    if text is None:
        return None
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return None
    return text


def already_started(transaction_id: str) -> StepworkError:
    """The error for a second insert of an execution's key (Medusa's message)."""
    return StepworkError(StepworkError.Types.CONFLICT,
                         f"Transaction already started for transaction_id: {transaction_id}")


def lease_lost(key: ExecutionKey) -> LeaseLostError:
    """The error of a write fenced out by another owner's lease (or a newer version)."""
    return LeaseLostError(f'Execution "{key.workflow_id}" / "{key.transaction_id}" was taken over by another '
                          "process (its lease expired); this process stops driving it.")
