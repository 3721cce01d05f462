"""Events: buses, subscribers and ``emit_event_step`` (docs/events.md).

``InMemoryEventBus`` (in this process) and ``RedisEventBus`` (Redis Streams, at least once, across
processes) implement the ``EventBus`` protocol. ``@subscriber`` registers handlers process-wide,
``bind_subscribers`` subscribes them to a bus, ``emit_event_step`` emits from a workflow in the
run's event group (released when the run ends ``done``, dropped when it is compensated), and
``attach_event_bus`` gives an engine its bus and publishes the workflow lifecycle events on it.
"""

from stepwork.events.attach import attach_event_bus, lifecycle_event_name
from stepwork.events.memory import InMemoryEventBus
from stepwork.events.redis_bus import RedisEventBus
from stepwork.events.steps import emit_event_step
from stepwork.events.subscribers import (
    Subscriber,
    bind_subscribers,
    registered_subscribers,
    subscriber,
    unregister_subscriber,
)
from stepwork.events.types import DeadLetter, Event, EventBus, Handler, RetrySchedule

__all__ = [
    "DeadLetter",
    "Event",
    "EventBus",
    "Handler",
    "InMemoryEventBus",
    "RedisEventBus",
    "RetrySchedule",
    "Subscriber",
    "attach_event_bus",
    "bind_subscribers",
    "emit_event_step",
    "lifecycle_event_name",
    "registered_subscribers",
    "subscriber",
    "unregister_subscriber",
]
