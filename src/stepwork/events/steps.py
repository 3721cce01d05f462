"""``emit_event_step``: emit events from a workflow, held in the run's event group until the
workflow ends (released when it is ``done``, dropped when it is compensated or failed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepwork.container import Modules
from stepwork.engine.context import StepContext
from stepwork.errors import StepworkError
from stepwork.events.types import EventBus
from stepwork.sdk.steps import Step, create_step

__all__ = ["emit_event_step"]



def _format(value: Any) -> str:
    return ('emit_event_step takes {"event_name": str, "data": ..., "metadata"?: dict} or a list of them, '
            f"got {value!r}.")


def _events(value: Any) -> list[Mapping[str, Any]]:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("event_name"), str) or not item["event_name"]:
            raise StepworkError(StepworkError.Types.INVALID_DATA, _format(value))
        unknown = set(item) - {"event_name", "data", "metadata"}
        if unknown:
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f"emit_event_step: unknown keys {sorted(unknown)}. {_format(value)}")
    return items


def _bus(ctx: StepContext) -> EventBus:
    bus = ctx.container.resolve_optional(Modules.EVENT_BUS)
    if bus is None:
        raise StepworkError(StepworkError.Types.NOT_FOUND,
                            f'Step "{ctx.step_name}" of workflow "{ctx.workflow_id}" emits events, but no event bus is '
                            "registered in its container as Modules.EVENT_BUS: register one "
                            "(container.register(Modules.EVENT_BUS, InMemoryEventBus())), or attach it to the "
                            "engine (attach_event_bus(engine, bus)).")
    return bus  # type: ignore[no-any-return]


async def _emit(input: Any, ctx: StepContext) -> None:
    events = _events(input)
    bus = _bus(ctx)
    for item in events:
        metadata = {**dict(item.get("metadata") or {}), "workflow_id": ctx.workflow_id,
                    "transaction_id": ctx.transaction_id, "step_name": ctx.step_name}
        await bus.emit(item["event_name"], item.get("data"), group_id=ctx.event_group_id, metadata=metadata)


emit_event_step: Step[Any, None] = create_step("emit-event-step", _emit)
"""A step emitting ``{"event_name": ..., "data": ...}`` (or a list of them) on the container's
``Modules.EVENT_BUS``, in the run's event group: subscribers see the events only once the workflow
ends ``done``; they are dropped if it is compensated or fails (Medusa's ``emitEventStep``)."""
