"""The per-run events (``on_begin``, ``on_step_success``… ``on_finish``): their names, the check of
a run's ``events`` mapping, and how a run emits one."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from stepwork.engine.log_fields import log_extra
from stepwork.errors import StepworkError
from stepwork.orchestration.execution_view import build_step_record

if TYPE_CHECKING:
    from stepwork.engine.step_calls import StepCalls

__all__ = ["EVENT_TYPES", "emit", "validate_events"]

logger = logging.getLogger("stepwork.engine")

EVENT_TYPES = frozenset({
    "on_begin", "on_resume", "on_step_begin", "on_step_success", "on_step_failure", "on_step_awaiting",
    "on_compensate_begin", "on_compensate_step_success", "on_compensate_step_failure", "on_timeout",
    "on_finish",
})


def validate_events(events: Mapping[str, Callable[[dict[str, Any]], Any]] | None) -> dict[str, Any]:
    """The ``events`` mapping of a run, checked: known event names, callable handlers."""
    if not events:
        return {}
    out: dict[str, Any] = {}
    for name, fn in events.items():
        if name not in EVENT_TYPES:
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f'Unknown event type "{name}" in events. Known: {", ".join(sorted(EVENT_TYPES))}.')
        if not callable(fn):
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f'The handler of event "{name}" must be callable, got {fn!r}.')
        out[name] = fn
    return out


async def emit(run: StepCalls, event_type: str, *, step: int | None = None, **fields: Any) -> None:
    """Call the run's handler of ``event_type`` (a handler's error is logged, never raised)."""
    fn = run.listeners.get(event_type)
    if fn is None:
        return
    event: dict[str, Any] = {"event_type": event_type, "workflow_id": run.workflow_id,
                             "transaction_id": run.transaction_id}
    if step is not None:
        event["step"] = build_step_record(run.txn, step)
    event.update(fields)
    try:
        r = fn(event)
        if inspect.isawaitable(r):
            await r
    except Exception:
        logger.exception("The %s handler of workflow %s raised; ignored.", event_type, run.workflow_id,
                         extra=log_extra(run.workflow_id, run.transaction_id, run.run_id,
                                         event["step"]["id"] if step is not None else None))
