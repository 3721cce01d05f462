"""``InMemoryEventBus``: events delivered in this process, each subscriber on its own, retried and
dead-lettered when it keeps failing. Nothing survives the process (use ``RedisEventBus`` for that)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from stepwork.container import Container
from stepwork.errors import StepworkError
from stepwork.events.types import (
    WILDCARD,
    DeadLetter,
    Event,
    Handler,
    RetrySchedule,
    call_handler,
    describe_error,
    handler_id,
    make_event,
)

__all__ = ["InMemoryEventBus"]

logger = logging.getLogger("stepwork.events")


class InMemoryEventBus:
    """The default event bus: delivery in this process, after ``emit`` (grouped events after
    ``release_grouped_events``), each subscriber isolated from the others.

    A subscriber that raises is logged and tried again (``max_attempts`` in all, waiting
    ``retry_delay * backoff ** n`` seconds in between); then the event is kept in
    :attr:`dead_letters` for it. Handlers get ``(event, container)``: the container given to
    ``subscribe`` (``bind_subscribers`` gives the application's), else ``container`` here.
    """

    def __init__(self, *, max_attempts: int = 3, retry_delay: float = 0.1, backoff: float = 2.0,
                 max_delay: float = 30.0, container: Container | None = None) -> None:
        self.retry = RetrySchedule(max_attempts, retry_delay, backoff, max_delay)
        self.container = container if container is not None else Container()
        self.dead_letters: list[DeadLetter] = []
        """Events a subscriber failed on ``max_attempts`` times, oldest first."""
        self._subs: dict[str, dict[str, tuple[Handler, Container]]] = {}
        self._groups: dict[str, list[Event]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def emit(self, name: str, data: Any = None, *, group_id: str | None = None,
                   metadata: dict[str, Any] | None = None) -> Event:
        """Publish ``name`` with ``data``; with ``group_id`` it is held until that group is
        released (or dropped when it is cleared). Returns the event."""
        event = make_event(name, data, group_id, metadata)
        if group_id is not None:
            self._groups.setdefault(group_id, []).append(event)
        else:
            self._dispatch(event)
        return event

    async def subscribe(self, name: str, handler: Handler, *, subscriber_id: str | None = None,
                        container: Container | None = None) -> str:
        """Deliver events named ``name`` (``"*"``: every event) to ``handler``. Subscribing the same
        id again replaces it. Returns the subscriber id (default: the handler's qualified name)."""
        _check_name(name)
        sid = handler_id(handler, subscriber_id)
        self._subs.setdefault(name, {})[sid] = (handler, container if container is not None else self.container)
        return sid

    async def unsubscribe(self, name: str, handler_or_id: Handler | str) -> bool:
        """Remove a subscriber of ``name`` by id or handler; True if there was one."""
        subs = self._subs.get(name, {})
        for sid, (fn, _c) in list(subs.items()):
            if sid == handler_or_id or fn is handler_or_id:
                del subs[sid]
                if not subs:
                    self._subs.pop(name, None)
                return True
        return False

    async def release_grouped_events(self, group_id: str) -> int:
        """Deliver the events held for ``group_id``, in the order they were emitted."""
        events = self._groups.pop(group_id, [])
        for event in events:
            self._dispatch(event)
        return len(events)

    async def clear_grouped_events(self, group_id: str) -> int:
        """Drop the events held for ``group_id``."""
        return len(self._groups.pop(group_id, []))

    def grouped_events(self, group_id: str) -> list[Event]:
        """The events held for ``group_id`` (a copy)."""
        return list(self._groups.get(group_id, []))

    async def start(self) -> None:
        """Nothing to start: delivery begins with the first ``emit``."""

    async def stop(self, grace: float = 10.0) -> None:
        """Wait for deliveries under way (at most ``grace`` seconds), then cancel what is left."""
        with contextlib.suppress(StepworkError):
            await self.wait_idle(grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait_idle(self, within: float = 10.0) -> None:
        """Wait until every delivery under way (retries included) has ended; ``StepworkError``
        (``unexpected_state``) if that takes more than ``within`` seconds."""
        deadline = time.monotonic() + within
        while self._tasks:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StepworkError(StepworkError.Types.UNEXPECTED_STATE,
                                    f"{len(self._tasks)} event deliveries still running after {within}s.")
            await asyncio.wait(set(self._tasks), timeout=left)

    def _dispatch(self, event: Event) -> None:
        targets = [*self._subs.get(event.name, {}).items(), *self._subs.get(WILDCARD, {}).items()]
        for sid, (handler, container) in targets:
            task = asyncio.create_task(self._deliver(sid, handler, container, event),
                                       name=f"stepwork-event-{event.name}-{sid}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, sid: str, handler: Handler, container: Container, event: Event) -> None:
        schedule = self.retry
        for attempt in range(1, schedule.max_attempts + 1):
            try:
                await call_handler(handler, Event(event.name, event.data, dict(event.metadata), event.id, attempt),
                                   container)
                return
            except Exception as exc:
                if attempt >= schedule.max_attempts:
                    logger.exception('Subscriber "%s" failed on event "%s" (%s) %d times; dead-lettered.',
                                     sid, event.name, event.id, attempt)
                    self.dead_letters.append(DeadLetter(event, sid, describe_error(exc), attempt))
                    return
                logger.warning('Subscriber "%s" failed on event "%s" (%s), attempt %d of %d; retrying: %s',
                               sid, event.name, event.id, attempt, schedule.max_attempts, describe_error(exc))
            await asyncio.sleep(schedule.delay(attempt))


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise StepworkError(StepworkError.Types.INVALID_DATA,
                            f'An event name to subscribe to must be a non-empty string (or "*"), got {name!r}.')
