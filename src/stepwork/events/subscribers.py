"""``@subscriber``: handlers registered process-wide (like workflows), bound to a bus with
``bind_subscribers(bus, container)``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from stepwork.container import Container
from stepwork.errors import StepworkError
from stepwork.events.types import EventBus, Handler, handler_id

__all__ = ["Subscriber", "bind_subscribers", "registered_subscribers", "subscriber", "unregister_subscriber"]

H = TypeVar("H", bound=Callable[..., Any])


@dataclasses.dataclass(frozen=True, slots=True)
class Subscriber:
    """A registered subscriber: the event name (``"*"``: every event), its handler and its id."""

    event: str
    handler: Handler
    subscriber_id: str


_REGISTRY: dict[tuple[str, str], Subscriber] = {}


def _names(event: str | Iterable[str]) -> list[str]:
    names = [event] if isinstance(event, str) else list(event)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise StepworkError(StepworkError.Types.INVALID_DATA,
                            f"@subscriber takes an event name or a list of names, got {event!r}.")
    return names


def _register(names: list[str], handler: Handler, subscriber_id: str | None) -> None:
    sid = handler_id(handler, subscriber_id)
    for name in names:
        _REGISTRY[(name, sid)] = Subscriber(name, handler, sid)


@overload
def subscriber(event: str | Iterable[str], handler: None = None, *,
               subscriber_id: str | None = None) -> Callable[[H], H]: ...
@overload
def subscriber(event: str | Iterable[str], handler: H, *, subscriber_id: str | None = None) -> H: ...
def subscriber(event: str | Iterable[str], handler: Callable[..., Any] | None = None, *,
               subscriber_id: str | None = None) -> Any:
    """Register ``handler(event, container)`` for the events named ``event`` (a name, a list of
    names, or ``"*"``), process-wide. As a decorator, ``@subscriber("brand.created")``, it returns
    the function unchanged. ``subscriber_id`` (default: the handler's ``module.qualname``) names the
    subscriber: on a Redis bus it is its consumer group, shared by every process running it."""
    names = _names(event)
    if handler is not None:
        _register(names, handler, subscriber_id)
        return handler

    def decorate(fn: H) -> H:
        _register(names, fn, subscriber_id)
        return fn
    return decorate


def registered_subscribers() -> list[Subscriber]:
    """Every registered subscriber, in registration order."""
    return list(_REGISTRY.values())


def unregister_subscriber(handler_or_id: Handler | str) -> int:
    """Forget a registered subscriber (by handler or id); returns how many registrations went."""
    gone = [k for k, s in _REGISTRY.items() if s.handler is handler_or_id or s.subscriber_id == handler_or_id]
    for key in gone:
        del _REGISTRY[key]
    return len(gone)


async def bind_subscribers(bus: EventBus, container: Container, *,
                           events: Iterable[str] | None = None) -> list[str]:
    """Subscribe every registered subscriber (only those of ``events`` when given) to ``bus``;
    each handler gets ``(event, container)``. Returns the subscriber ids bound."""
    wanted = None if events is None else set(events)
    bound = []
    for sub in registered_subscribers():
        if wanted is None or sub.event in wanted:
            bound.append(await bus.subscribe(sub.event, sub.handler, subscriber_id=sub.subscriber_id,
                                             container=container))
    return bound
