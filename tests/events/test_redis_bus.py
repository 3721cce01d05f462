"""RedisEventBus on a real Redis: retries, dead letters, grouped events, at least once when a
consumer dies mid-handler, and nothing lost when the server restarts mid-stream."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stepwork import Container, Event, RedisEventBus, StepworkError

from .conftest import REDIS_URL, PrivateRedis, eventually

MakeBus = Callable[..., RedisEventBus]


async def _pending(bus: RedisEventBus, name: str, sid: str) -> int:
    info = await bus.client.xpending(bus.stream_key(name), f"{bus.group}:{sid}")
    return int(info["pending"])


async def test_a_failing_subscriber_is_retried_then_acknowledged(redis_buses: MakeBus) -> None:
    """Attempts 1 and 2 raise, 3 succeeds; the message is then acknowledged (nothing pending)."""
    bus = redis_buses(max_attempts=3)
    attempts: list[int] = []

    def flaky(event: Event, c: Container) -> None:
        attempts.append(event.attempt)
        if event.attempt < 3:
            raise RuntimeError("not yet")

    await bus.subscribe("thing.done", flaky, subscriber_id="flaky")
    await bus.start()
    await bus.emit("thing.done", {"n": 1})
    await eventually(lambda: attempts == [1, 2, 3])
    await eventually(lambda: _pending_is_zero(bus, "thing.done", "flaky"))
    assert await bus.dead_letters() == []


async def _pending_is_zero(bus: RedisEventBus, name: str, sid: str) -> bool:
    return await _pending(bus, name, sid) == 0


async def test_a_subscriber_that_always_fails_is_dead_lettered(redis_buses: MakeBus) -> None:
    """After max_attempts the event is in the dead-letter stream (with the error) and acknowledged;
    another subscriber of the same event is not affected."""
    bus = redis_buses(max_attempts=2)
    calm: list[str] = []

    def broken(event: Event, c: Container) -> None:
        raise ValueError("broken handler")

    await bus.subscribe("thing.done", broken, subscriber_id="broken")
    await bus.subscribe("thing.done", lambda e, c: calm.append(e.id), subscriber_id="calm")
    await bus.start()
    event = await bus.emit("thing.done", {"n": 1})
    await eventually(lambda: _has_dead_letter(bus))
    [dead] = await bus.dead_letters()
    assert (dead.event.id, dead.event.data, dead.subscriber_id, dead.attempts) == (event.id, {"n": 1}, "broken", 2)
    assert dead.error == "ValueError: broken handler"
    assert calm == [event.id]
    await eventually(lambda: _pending_is_zero(bus, "thing.done", "broken"))


async def _has_dead_letter(bus: RedisEventBus) -> bool:
    return bool(await bus.dead_letters())


async def test_grouped_events_are_held_in_redis_with_a_ttl_until_released(redis_buses: MakeBus) -> None:
    """Held events live in a list with a TTL; release moves them to their streams in order; clear drops."""
    emitter = redis_buses(group_ttl=60)
    consumer = redis_buses()
    seen: list[Any] = []
    await consumer.subscribe("a", lambda e, c: seen.append(e.data), subscriber_id="s")
    await consumer.subscribe("b", lambda e, c: seen.append(e.data), subscriber_id="s")
    await consumer.start()
    await emitter.emit("a", 1, group_id="g1")
    await emitter.emit("b", 2, group_id="g1")
    await emitter.emit("a", 3, group_id="g2")
    assert 0 < await emitter.client.ttl(emitter.group_key("g1")) <= 60
    assert [e.data for e in await emitter.grouped_events("g1")] == [1, 2]
    assert await emitter.clear_grouped_events("g2") == 1
    assert await emitter.release_grouped_events("g1") == 2
    assert await emitter.release_grouped_events("g1") == 0
    await emitter.emit("a", "sentinel")
    await eventually(lambda: "sentinel" in seen)
    assert sorted(map(str, seen)) == ["1", "2", "sentinel"]


async def test_a_wildcard_subscription_is_refused_clearly(redis_buses: MakeBus) -> None:
    """Redis streams are per event name: "*" is an error naming the in-memory bus."""
    with pytest.raises(StepworkError, match="InMemoryEventBus"):
        await redis_buses().subscribe("*", lambda e, c: None)


_WORKER = textwrap.dedent("""
    import asyncio, pathlib, sys
    from stepwork import RedisEventBus

    url, prefix, directory = sys.argv[1:4]

    async def main() -> None:
        bus = RedisEventBus(url, prefix=prefix, visibility_timeout=1.0, block=0.1)

        async def handler(event, container):
            pathlib.Path(directory, "handling").write_text(event.id)
            await asyncio.Event().wait()  # killed in here

        await bus.subscribe("job.created", handler, subscriber_id="worker")
        await bus.start()
        pathlib.Path(directory, "ready").write_text("ready")
        await asyncio.Event().wait()

    asyncio.run(main())
""")


@pytest.mark.slow
async def test_an_event_whose_consumer_died_mid_handler_is_delivered_again(redis_buses: MakeBus, prefix: str,
                                                                           tmp_path: Path) -> None:
    """A consumer process is killed (SIGKILL) inside the handler: its unacknowledged message is
    reclaimed after the visibility timeout by another consumer of the same subscriber (attempt 2)."""
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, REDIS_URL, prefix, str(tmp_path)])
    try:
        await eventually(lambda: (tmp_path / "ready").exists(), timeout=20)
        emitter = redis_buses()
        event = await emitter.emit("job.created", {"job": 7})
        await eventually(lambda: (tmp_path / "handling").exists())
        assert (tmp_path / "handling").read_text() == event.id
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        got: list[Event] = []
        survivor = redis_buses(visibility_timeout=1.0)
        await survivor.subscribe("job.created", lambda e, c: got.append(e), subscriber_id="worker")
        await survivor.start()
        await eventually(lambda: len(got) == 1, timeout=10)
        assert (got[0].id, got[0].data, got[0].attempt) == (event.id, {"job": 7}, 2)
        await eventually(lambda: _pending_is_zero(survivor, "job.created", "worker"))
    finally:
        worker.kill()
        worker.wait(10)


@pytest.mark.slow
async def test_a_redis_restart_mid_stream_loses_nothing(redis_buses: MakeBus, private_redis: PrivateRedis,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """A private redis-server (appendonly) is restarted while events are being handled: every event
    emitted before and after the restart is handled (at least once), none is lost."""
    caplog.set_level(logging.WARNING, logger="stepwork.events")
    bus = redis_buses(private_redis.url, visibility_timeout=1.0, batch=8)
    handled: set[int] = set()

    async def slow(event: Event, c: Container) -> None:
        await asyncio.sleep(0.01)
        handled.add(event.data)

    await bus.subscribe("tick", slow, subscriber_id="ticker")
    await bus.start()
    for n in range(40):
        await bus.emit("tick", n)
    await eventually(lambda: len(handled) >= 5)
    assert len(handled) < 40, "the restart should happen mid-stream"
    private_redis.stop()
    await eventually(lambda: "lost Redis" in caplog.text)  # the consumer saw the outage, and waits
    private_redis.start()
    for n in range(40, 60):
        await bus.emit("tick", n)
    await eventually(lambda: handled == set(range(60)), timeout=20)
    await eventually(lambda: _pending_is_zero(bus, "tick", "ticker"), timeout=10)
