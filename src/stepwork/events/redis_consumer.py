"""One subscriber of a ``RedisEventBus``: a consumer in its consumer group, reading the event's
stream, reclaiming what a dead consumer left pending, retrying, dead-lettering, acknowledging
only after the handler succeeded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from stepwork.container import Container
from stepwork.events.types import Event, Handler, call_handler, describe_error

if TYPE_CHECKING:
    from stepwork.events.redis_bus import RedisEventBus

__all__ = ["Consumer"]

logger = logging.getLogger("stepwork.events")


class Consumer:
    """Delivers one event name's stream to one subscriber (its consumer group ``{group}:{id}``)."""

    def __init__(self, bus: RedisEventBus, name: str, subscriber_id: str, handler: Handler,
                 container: Container) -> None:
        self.bus = bus
        self.name = name
        self.subscriber_id = subscriber_id
        self.handler = handler
        self.container = container
        self.stream = bus.stream_key(name)
        self.group = f"{bus.group}:{subscriber_id}"
        self.attempts_key = f"{bus.prefix}:attempts:{self.group}:{name}"
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.idle = asyncio.Event()
        self.idle.set()
        self.stopping = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start reading (a task of the running event loop)."""
        if self.task is None or self.task.done():
            self.stopping = False
            self.task = asyncio.create_task(self._loop(), name=f"stepwork-consumer-{self.group}-{self.name}")

    async def stop(self, grace: float) -> None:
        """Let the handler under way finish (at most ``grace`` seconds), then stop reading. What was
        read but not handled stays pending, and is reclaimed later."""
        self.stopping = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle.wait(), grace)
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None

    async def _loop(self) -> None:
        bus = self.bus
        client = bus.client
        errors = bus.redis_errors
        pause = 0.05
        group_ready = False
        next_claim = 0.0
        block_ms = max(1, int(min(bus.block, bus.visibility_timeout / 2) * 1000))
        while not self.stopping:
            try:
                if not group_ready:
                    await self.create_group()
                    group_ready = True
                if time.monotonic() >= next_claim:
                    await self._reclaim()
                    next_claim = time.monotonic() + max(0.05, bus.visibility_timeout / 2)
                reply = await client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=bus.batch,
                                                block=block_ms)
                for _stream, messages in reply or []:
                    for message_id, fields in messages:
                        if self.stopping:
                            return
                        await self._handle(message_id, fields)
                pause = 0.05
            except asyncio.CancelledError:
                raise
            except errors.ResponseError as exc:
                if "NOGROUP" in str(exc):  # the stream or group vanished (a Redis without persistence restarted)
                    group_ready = False
                    continue
                logger.exception('Event consumer "%s" on "%s" got an error from Redis.', self.group, self.stream)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
            except (errors.ConnectionError, errors.TimeoutError, OSError) as exc:
                logger.warning('Event consumer "%s" on "%s" lost Redis (%s); reconnecting in %.2fs.',
                               self.group, self.stream, describe_error(exc), pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)

    async def create_group(self) -> None:
        """Make the consumer group if it does not exist yet."""
        try:
            # "$": a new subscriber gets the events emitted from now on, not the stream's history.
            await self.bus.client.xgroup_create(self.stream, self.group, id="$", mkstream=True)
        except self.bus.redis_errors.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _reclaim(self) -> None:
        """Take over the messages pending longer than the visibility timeout (their consumer died)."""
        bus = self.bus
        start = "0-0"
        for _ in range(100):
            reply = await bus.client.xautoclaim(self.stream, self.group, self.consumer,
                                                min_idle_time=int(bus.visibility_timeout * 1000),
                                                start_id=start, count=bus.batch)
            start, messages = reply[0], reply[1]
            deleted = reply[2] if len(reply) > 2 else []
            if deleted:  # trimmed from the stream while pending: nothing left to deliver
                await bus.client.xack(self.stream, self.group, *deleted)
            for message_id, fields in messages:
                if self.stopping:
                    return
                if fields is None:
                    continue
                await self._handle(message_id, fields)
            if start in ("0-0", b"0-0"):
                return

    async def _handle(self, message_id: str, fields: dict[str, Any]) -> None:
        self.idle.clear()
        try:
            await self._deliver(message_id, fields)
        finally:
            self.idle.set()

    async def _deliver(self, message_id: str, fields: dict[str, Any]) -> None:
        bus = self.bus
        schedule = bus.retry
        attempt = int(await bus.client.hincrby(self.attempts_key, message_id, 1))
        try:
            event = Event.from_json(fields["event"], attempt)
        except Exception as exc:
            await self._dead_letter(message_id, str(fields.get("event")), f"unreadable event: {describe_error(exc)}",
                                    attempt)
            return
        if attempt > schedule.max_attempts:  # earlier attempts ended with their consumer (a crash)
            await self._dead_letter(message_id, fields["event"], "its consumers stopped while handling it",
                                    attempt - 1)
            return
        while True:
            try:
                async with self._heartbeat(message_id):
                    await call_handler(self.handler, Event(event.name, event.data, event.metadata, event.id, attempt),
                                       self.container)
            except Exception as exc:
                if attempt >= schedule.max_attempts:
                    logger.error('Subscriber "%s" failed on event "%s" (%s) %d times; dead-lettered: %s',
                                 self.subscriber_id, event.name, event.id, attempt, describe_error(exc))
                    await self._dead_letter(message_id, fields["event"], describe_error(exc), attempt)
                    return
                logger.warning('Subscriber "%s" failed on event "%s" (%s), attempt %d of %d; retrying: %s',
                               self.subscriber_id, event.name, event.id, attempt, schedule.max_attempts,
                               describe_error(exc))
                await asyncio.sleep(schedule.delay(attempt))
                attempt = int(await bus.client.hincrby(self.attempts_key, message_id, 1))
                continue
            await self._ack(message_id)
            return

    @contextlib.asynccontextmanager
    async def _heartbeat(self, message_id: str) -> AsyncIterator[None]:
        """While the handler runs, keep the message ours (its idle time reset), so that a handler
        longer than the visibility timeout is not handed to another consumer."""
        bus = self.bus

        async def beat() -> None:
            while True:
                await asyncio.sleep(bus.visibility_timeout / 3)
                with contextlib.suppress(Exception):
                    await bus.client.xclaim(self.stream, self.group, self.consumer, 0, [message_id], justid=True)

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _ack(self, message_id: str) -> None:
        """Acknowledge (after the handler succeeded), through a Redis outage: an ack that never gets
        through leaves the message pending, to be delivered again (at least once)."""
        await self._commit(message_id, None)

    async def _dead_letter(self, message_id: str, text: str, error: str, attempts: int) -> None:
        await self._commit(message_id, {"event": text, "subscriber_id": self.subscriber_id, "group": self.group,
                                        "error": error, "attempts": str(attempts)})

    async def _commit(self, message_id: str, dead: dict[str, str] | None) -> None:
        bus = self.bus
        pause = 0.05
        while True:
            try:
                async with bus.client.pipeline(transaction=True) as pipe:
                    if dead is not None:
                        pipe.xadd(bus.dead_key, dead, maxlen=bus.maxlen, approximate=True)
                    pipe.xack(self.stream, self.group, message_id)
                    pipe.hdel(self.attempts_key, message_id)
                    await pipe.execute()
                return
            except (bus.redis_errors.ConnectionError, bus.redis_errors.TimeoutError, OSError) as exc:
                if self.stopping:
                    return
                if pause == 0.05:
                    logger.warning('Event consumer "%s" on "%s" lost Redis while acknowledging %s (%s); retrying.',
                                   self.group, self.stream, message_id, describe_error(exc))
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
