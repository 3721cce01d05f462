"""``attach_event_bus``: an engine's event bus, and the workflow lifecycle events published on it.

Registering the bus in the engine's container as ``Modules.EVENT_BUS`` is what makes the engine
release a finished run's event group (``done``) or drop it (reverted, failed): the engine does that
for any run whose container has a bus (``engine/outcome.py``), in memory too. The lifecycle events
are the engine's per-run events (``on_begin``, ``on_step_success``… ``on_finish``) published as
``workflow.begin``, ``workflow.step_success``… ``workflow.finish``, ungrouped: they say what happened,
so a reverted run's ``workflow.finish`` is published too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from stepwork.container import Modules
from stepwork.engine.run_events import EVENT_TYPES
from stepwork.errors import StepworkError
from stepwork.events.types import EventBus
from stepwork.storage.serialization import to_jsonable

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine

__all__ = ["LIFECYCLE_PREFIX", "attach_event_bus", "lifecycle_event_name"]

logger = logging.getLogger("stepwork.events")

LIFECYCLE_PREFIX = "workflow."
_SUBSCRIBER_ID = "stepwork.events.lifecycle"
_FIELDS = ("workflow_id", "transaction_id", "state", "step", "response", "result", "errors")


def lifecycle_event_name(event_type: str) -> str:
    """``"on_step_success"`` → ``"workflow.step_success"``."""
    return LIFECYCLE_PREFIX + event_type.removeprefix("on_")


def attach_event_bus(engine: WorkflowEngine, bus: EventBus, *,
                     lifecycle_events: Iterable[str] | None = ("on_begin", "on_resume", "on_compensate_begin",
                                                                "on_timeout", "on_finish")) -> None:
    """Register ``bus`` as the engine's ``Modules.EVENT_BUS`` (so ``emit_event_step`` finds it and
    finished runs release or drop their event groups) and publish the engine's lifecycle events on it.

    ``lifecycle_events``: which per-run event types to publish (default: begin, resume,
    compensate_begin, timeout, finish; ``"all"`` for every type, step events included; ``None`` or
    an empty list for none). Attaching again replaces the earlier publisher.
    """
    engine.container.register(Modules.EVENT_BUS, bus)
    kinds = set(EVENT_TYPES) if lifecycle_events == "all" else set(lifecycle_events or ())
    unknown = kinds - EVENT_TYPES
    if unknown:
        raise StepworkError(StepworkError.Types.INVALID_DATA,
                            f"Unknown lifecycle event types {sorted(unknown)}; known: {sorted(EVENT_TYPES)}.")
    engine.subscriptions.remove_global(_SUBSCRIBER_ID)
    if not kinds:
        return

    async def publish(event: dict[str, Any]) -> None:
        event_type = event.get("event_type", "")
        if event_type not in kinds:
            return
        await bus.emit(lifecycle_event_name(event_type), _data(event))

    engine.subscriptions.add_global(publish, _SUBSCRIBER_ID)


def _data(event: dict[str, Any]) -> dict[str, Any]:
    """The per-run event's fields as JSON values (a field that has no JSON form is given as text)."""
    out: dict[str, Any] = {}
    for key in _FIELDS:
        if key not in event:
            continue
        try:
            out[key] = to_jsonable(event[key], key)
        except StepworkError:
            out[key] = repr(event[key])
    return out
