"""InMemoryEventBus: delivery, isolation, retries, dead letters, groups."""

from __future__ import annotations

from typing import Any

import pytest

from stepwork import Container, Event, InMemoryEventBus, StepworkError
from stepwork.events import EventBus

from .conftest import eventually


async def test_an_emitted_event_reaches_every_subscriber_with_the_container() -> None:
    """Each subscriber of the name (and of "*") gets the event and the container it was bound with."""
    container = Container({"who": "app"})
    bus = InMemoryEventBus(container=container)
    assert isinstance(bus, EventBus)
    got: list[tuple[str, Any, Any]] = []

    async def on_created(event: Event, c: Container) -> None:
        got.append(("async", event.data, c.resolve("who")))

    def on_any(event: Event, c: Container) -> None:
        got.append(("sync", event.name, c.resolve("who")))

    await bus.subscribe("brand.created", on_created)
    await bus.subscribe("*", on_any)
    event = await bus.emit("brand.created", {"id": "b1"}, metadata={"source": "test"})
    await bus.emit("other.thing", 1)
    await bus.wait_idle()
    assert sorted(got, key=repr) == sorted([("async", {"id": "b1"}, "app"), ("sync", "brand.created", "app"),
                                            ("sync", "other.thing", "app")], key=repr)
    assert event.metadata["source"] == "test" and "emitted_at" in event.metadata


async def test_a_failing_subscriber_is_retried_then_succeeds_without_disturbing_others() -> None:
    """A subscriber failing twice succeeds on its third attempt; its neighbour ran once."""
    bus = InMemoryEventBus(max_attempts=3, retry_delay=0.001)
    attempts: list[int] = []
    calm: list[str] = []

    def flaky(event: Event, c: Container) -> None:
        attempts.append(event.attempt)
        if event.attempt < 3:
            raise RuntimeError("not yet")

    await bus.subscribe("x", flaky)
    await bus.subscribe("x", lambda e, c: calm.append(e.id), subscriber_id="calm")
    await bus.emit("x", None)
    await bus.wait_idle()
    assert attempts == [1, 2, 3]
    assert len(calm) == 1
    assert bus.dead_letters == []


async def test_a_subscriber_that_always_fails_ends_in_the_dead_letters() -> None:
    """After max_attempts the event is dead-lettered with the subscriber id and the error."""
    bus = InMemoryEventBus(max_attempts=2, retry_delay=0.001)

    def broken(event: Event, c: Container) -> None:
        raise ValueError("broken handler")

    await bus.subscribe("x", broken, subscriber_id="broken")
    event = await bus.emit("x", {"n": 1})
    await bus.wait_idle()
    [dead] = bus.dead_letters
    assert (dead.event.id, dead.subscriber_id, dead.attempts) == (event.id, "broken", 2)
    assert dead.error == "ValueError: broken handler"


async def test_grouped_events_wait_for_release_and_vanish_when_cleared() -> None:
    """Grouped events are delivered on release, in order, and never after a clear."""
    bus = InMemoryEventBus()
    seen: list[Any] = []
    await bus.subscribe("x", lambda e, c: seen.append(e.data))
    await bus.emit("x", 1, group_id="g1")
    await bus.emit("x", 2, group_id="g1")
    await bus.emit("x", 3, group_id="g2")
    await bus.wait_idle()
    assert seen == []
    assert [e.metadata["event_group_id"] for e in bus.grouped_events("g1")] == ["g1", "g1"]
    assert await bus.release_grouped_events("g1") == 2
    assert await bus.clear_grouped_events("g2") == 1
    assert await bus.release_grouped_events("g2") == 0
    await bus.wait_idle()
    assert sorted(seen) == [1, 2]


async def test_unsubscribe_and_bad_input_are_clear() -> None:
    """Unsubscribed handlers get nothing; a bad name or data is a StepworkError naming it."""
    bus = InMemoryEventBus()
    seen: list[Any] = []

    def handler(e: Event, c: Container) -> None:
        seen.append(e)

    await bus.subscribe("x", handler)
    assert await bus.unsubscribe("x", handler) is True
    assert await bus.unsubscribe("x", handler) is False
    await bus.emit("x", 1)
    await bus.wait_idle()
    assert seen == []
    with pytest.raises(StepworkError, match="event name"):
        await bus.emit("", 1)
    with pytest.raises(StepworkError, match='The data of event "x"'):
        await bus.emit("x", object())


async def test_stop_waits_for_deliveries_under_way() -> None:
    """stop() lets a running handler finish."""
    bus = InMemoryEventBus()
    done: list[int] = []

    async def slow(e: Event, c: Container) -> None:
        import asyncio
        await asyncio.sleep(0.05)
        done.append(1)

    await bus.subscribe("x", slow)
    await bus.emit("x")
    await bus.stop()
    await eventually(lambda: done == [1], timeout=0.1)
