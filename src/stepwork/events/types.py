"""What every event bus shares: ``Event``, the ``EventBus`` protocol, subscriber handlers, dead
letters, and the retry schedule of a failing subscriber."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import json
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from stepwork.container import Container
from stepwork.engine.ids import new_ulid
from stepwork.errors import StepworkError
from stepwork.storage.serialization import to_jsonable

__all__ = ["DeadLetter", "Event", "EventBus", "Handler", "RetrySchedule", "call_handler", "handler_id",
           "make_event"]

Handler = Callable[["Event", Container], Any]
"""A subscriber: ``handler(event, container)``, a plain function or a coroutine function."""

WILDCARD = "*"

@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One event as a subscriber receives it.

    ``name`` (``"brand.created"``), ``data`` (JSON values), ``metadata`` (``emitted_at``, and for an
    event emitted by a workflow step ``event_group_id``, ``workflow_id``, ``transaction_id``,
    ``step_name``; anything the emitter added), ``id`` (unique per emitted event: a subscriber that
    must not act twice on a redelivery keys on it) and ``attempt`` (1-based delivery attempt to this
    subscriber).
    """

    name: str
    data: Any
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    id: str = dataclasses.field(default_factory=new_ulid)
    attempt: int = 1

    def to_json(self) -> str:
        """The event as JSON text (what a Redis stream entry carries)."""
        return json.dumps({"id": self.id, "name": self.name, "data": self.data, "metadata": self.metadata},
                          ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes, attempt: int = 1) -> Event:
        """The event of :meth:`to_json`'s text."""
        raw = json.loads(text)
        return cls(raw["name"], raw.get("data"), dict(raw.get("metadata") or {}), raw["id"], attempt)

@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event a subscriber failed on ``attempts`` times: kept for inspection, not retried again."""

    event: Event
    subscriber_id: str
    error: str
    attempts: int

@runtime_checkable
class EventBus(Protocol):
    """What ``Modules.EVENT_BUS`` must provide (``InMemoryEventBus``, ``RedisEventBus``)."""

    async def emit(self, name: str, data: Any = None, *, group_id: str | None = None,
                   metadata: dict[str, Any] | None = None) -> Event:
        """Publish an event (held until ``release_grouped_events(group_id)`` when grouped)."""
        ...

    async def subscribe(self, name: str, handler: Handler, *, subscriber_id: str | None = None,
                        container: Container | None = None) -> str:
        """Deliver the events named ``name`` to ``handler``; returns the subscriber id."""
        ...

    async def unsubscribe(self, name: str, handler_or_id: Handler | str) -> bool:
        """Stop delivering ``name`` to that handler; True if it was subscribed."""
        ...

    async def release_grouped_events(self, group_id: str) -> int:
        """Publish the events held for ``group_id``; returns how many."""
        ...

    async def clear_grouped_events(self, group_id: str) -> int:
        """Drop the events held for ``group_id``; returns how many."""
        ...

    async def start(self) -> None:
        """Start delivering (idempotent)."""
        ...

    async def stop(self) -> None:
        """Stop delivering (idempotent)."""
        ...

def make_event(name: str, data: Any, group_id: str | None, metadata: dict[str, Any] | None) -> Event:
    """A new event, its name and data checked (data becomes JSON values, as stored payloads do)."""
    if not isinstance(name, str) or not name or name == WILDCARD:
        raise StepworkError(StepworkError.Types.INVALID_DATA,
                            f'An event name must be a non-empty string other than "*", got {name!r}.')
    meta: dict[str, Any] = to_jsonable(dict(metadata or {}), f'The metadata of event "{name}"')
    if group_id is not None:
        meta["event_group_id"] = group_id
    meta.setdefault("emitted_at", dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"))
    return Event(name, to_jsonable(data, f'The data of event "{name}"'), meta)

def handler_id(handler: Handler, subscriber_id: str | None) -> str:
    """``subscriber_id``, else the handler's ``module.qualname`` (stable across processes)."""
    if subscriber_id is not None:
        if not isinstance(subscriber_id, str) or not subscriber_id:
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f"A subscriber id must be a non-empty string, got {subscriber_id!r}.")
        return subscriber_id
    if not callable(handler):
        raise StepworkError(StepworkError.Types.INVALID_DATA,
                            f"A subscriber must be callable (event, container), got {handler!r}.")
    module = getattr(handler, "__module__", None) or "handler"
    return f"{module}.{getattr(handler, '__qualname__', type(handler).__qualname__)}"

async def call_handler(handler: Handler, event: Event, container: Container) -> None:
    """Call a plain or async handler with ``(event, container)``."""
    result = handler(event, container)
    if inspect.isawaitable(result):
        await result

@dataclasses.dataclass(frozen=True, slots=True)
class RetrySchedule:
    """How often a failing subscriber is tried (``max_attempts`` in all) and the wait before each
    retry: ``retry_delay * backoff ** (attempt - 1)``, at most ``max_delay`` seconds."""

    max_attempts: int = 3
    retry_delay: float = 0.5
    backoff: float = 2.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f"max_attempts must be an int >= 1, got {self.max_attempts!r}.")
        if self.retry_delay < 0 or self.backoff < 1 or self.max_delay < 0:
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                "retry_delay and max_delay must be >= 0 and backoff >= 1, got "
                                f"{self.retry_delay!r}, {self.max_delay!r}, {self.backoff!r}.")

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (1-based)."""
        return float(min(self.max_delay, self.retry_delay * self.backoff ** (attempt - 1)))

def describe_error(exc: BaseException) -> str:
    """``"TypeName: message"`` (a message that cannot be written is left out)."""
    try:
        text = str(exc)
    except Exception:
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
