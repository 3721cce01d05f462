"""``WorkflowExecution``: a stored execution as users read it (docs/execution.md)."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from stepwork.storage.base import ExecutionRow, StepRow
from stepwork.storage.serialization import decode

__all__ = ["WorkflowExecution", "assemble"]



def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dt(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.UTC)


class WorkflowExecution:
    """A stored execution: ``id``, ``workflow_id``, ``transaction_id``, ``run_id``, ``state``,
    ``execution``, ``context``, ``retention_time``, ``created_at``, ``updated_at``, ``deleted_at``.

    Times are timezone-aware ``datetime`` objects; :meth:`to_dict` gives the record of docs/execution.md with
    ISO-8601 strings.
    """

    __slots__ = ("_row", "context", "execution")

    def __init__(self, row: ExecutionRow, execution: dict[str, Any] | None, context: dict[str, Any] | None) -> None:
        self._row = row
        self.execution = execution
        self.context = context

    @property
    def id(self) -> str:
        """``"wf_exec_" + ULID``."""
        return self._row.id

    @property
    def workflow_id(self) -> str:
        """The workflow's name."""
        return self._row.workflow_id

    @property
    def transaction_id(self) -> str:
        """The transaction id."""
        return self._row.transaction_id

    @property
    def run_id(self) -> str:
        """The run id."""
        return self._row.run_id

    @property
    def state(self) -> str:
        """The transaction state."""
        return self._row.state

    @property
    def retention_time(self) -> float | None:
        """Seconds the execution is kept after it finished (``None``: removed when it finishes)."""
        return self._row.retention_time

    @property
    def created_at(self) -> dt.datetime:
        """When the execution was created."""
        return _dt(self._row.created_at)  # type: ignore[return-value]

    @property
    def updated_at(self) -> dt.datetime:
        """When the execution last changed."""
        return _dt(self._row.updated_at)  # type: ignore[return-value]

    @property
    def deleted_at(self) -> dt.datetime | None:
        """When the execution was soft-deleted, if ever."""
        return _dt(self._row.deleted_at)

    def to_dict(self) -> dict[str, Any]:
        """The record with exactly the keys docs/execution.md lists (times as ISO-8601 strings)."""
        r = self._row
        return {
            "id": r.id, "workflow_id": r.workflow_id, "transaction_id": r.transaction_id, "run_id": r.run_id,
            "state": r.state, "execution": self.execution, "context": self.context,
            "retention_time": r.retention_time, "created_at": _iso(r.created_at),
            "updated_at": _iso(r.updated_at), "deleted_at": _iso(r.deleted_at),
        }

    def __repr__(self) -> str:
        return (f"WorkflowExecution(id={self.id!r}, workflow_id={self.workflow_id!r}, "
                f"transaction_id={self.transaction_id!r}, state={self.state!r})")


def _nest(stages: list[list[dict[str, Any]]] | None) -> dict[str, Any]:
    """Medusa's nested ``definition`` tree from the flat stages (built without recursion)."""
    root: dict[str, Any] = {}
    parent = root
    for stage in stages or []:
        nodes = [dict(node) for node in stage]
        parent["next"] = nodes[0] if len(nodes) == 1 else nodes
        parent = nodes[-1]
    return root


def assemble(row: ExecutionRow, steps: list[StepRow] | None,
             template: dict[str, Any] | None = None) -> WorkflowExecution:
    """The user-facing record of a row, assembled from the static template of its definition (or its
    own initial record), its progress and its step rows."""
    base = template if template is not None else row.execution
    if steps is None or base is None:
        return WorkflowExecution(row, row.execution, row.context)
    execution = copy.deepcopy(base)
    if "stages" in execution:
        execution["definition"] = _nest(execution.pop("stages"))
    execution["transactionId"] = row.transaction_id
    execution["runId"] = row.run_id
    progress = row.progress
    execution["metadata"] = progress.get("metadata") or {}
    execution["state"] = row.state
    for flag, value in (progress.get("flags") or {}).items():
        camel = "".join(p if k == 0 else p.capitalize() for k, p in enumerate(flag.split("_")))
        execution[camel] = value
    for key in ("startedAt", "timedOutAt", "cancelledAt"):
        value = progress.get(key)
        execution[key] = None if value is None else int(value * 1000)
    ids = [k for k in execution.get("steps", {}) if k != "_root"]  # stored in plan order
    context = copy.deepcopy(row.context) if row.context is not None else {"data": {}, "errors": []}
    data = context.setdefault("data", {})
    invoke = data.setdefault("invoke", {})
    compensate = data.setdefault("compensate", {})
    for s in steps:
        if not 0 <= s.index < len(ids):
            continue
        record = execution["steps"][ids[s.index]]
        rec = s.record
        record["invoke"] = {"state": rec["invoke"][0], "status": rec["invoke"][1]}
        record["compensate"] = {"state": rec["compensate"][0], "status": rec["compensate"][1]}
        record["attempts"] = rec.get("attempts", 0)
        if "invokeAttempts" in rec:
            record["invokeAttempts"] = rec["invokeAttempts"]
        record["failures"] = rec.get("failures", 0)
        for key in ("startedAt", "lastAttempt"):
            value = rec.get(key)
            record[key] = None if value is None else int(value * 1000)
        definition = record.get("definition", {})
        name = definition.get("action", ids[s.index])
        if rec["invoke"][0] in ("done", "timeout") and definition.get("saveResponse", True):
            invoke[name] = decode(s.output)
        if s.compensate_output is not None:
            compensate[name] = decode(s.compensate_output)
    context["errors"] = progress.get("errors") or []
    return WorkflowExecution(row, execution, context)
