"""``RedisEventBus``: events on Redis Streams, delivered at least once to every subscriber (a
consumer group per subscriber), with retries, a dead-letter stream, and grouped events held in
Redis until their workflow ends. Needs the ``redis`` package (``pip install "stepwork[redis]"``).

Keys (``prefix`` defaults to ``"stepwork"``): ``{prefix}:events:{name}`` a stream per event name;
``{prefix}:group:{group_id}`` a list of held events (expires after ``group_ttl`` seconds);
``{prefix}:dead`` the dead letters; ``{prefix}:attempts:…`` a hash of attempt counts per subscriber.
"""

from __future__ import annotations

import importlib
from types import TracebackType
from typing import Any

from stepwork.container import Container
from stepwork.errors import StepworkError
from stepwork.events.redis_consumer import Consumer
from stepwork.events.types import WILDCARD, DeadLetter, Event, Handler, RetrySchedule, handler_id, make_event

__all__ = ["RedisEventBus"]

# Move a group's held events to their streams and delete the group, atomically.
_RELEASE = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
for _, item in ipairs(items) do
  local name = cjson.decode(item)['name']
  redis.call('XADD', ARGV[1] .. name, 'MAXLEN', '~', ARGV[2], '*', 'event', item)
end
redis.call('DEL', KEYS[1])
return #items
"""


def _import_redis() -> Any:
    try:
        return importlib.import_module("redis.asyncio")
    except ImportError:
        raise StepworkError(StepworkError.Types.NOT_FOUND,
                            'RedisEventBus needs the "redis" package: pip install "stepwork[redis]".') from None


class RedisEventBus:
    """An event bus on Redis Streams, shared by every process using the same ``url`` and ``prefix``.

    Every subscriber id is a consumer group on each event's stream: each process running that
    subscriber is a consumer in it, so an event is handled once per subscriber, by one of them. A
    message is acknowledged only after its handler succeeded; one left pending by a consumer that
    died is reclaimed by another after ``visibility_timeout`` seconds (at least once). A handler
    that raises is tried again (``max_attempts`` in all, counted in Redis across processes), then
    the event goes to the dead-letter stream (:meth:`dead_letters`). Consumers start with
    :meth:`start` (or ``async with bus:``) and survive Redis restarts, reconnecting.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "stepwork", group: str = "stepwork",
                 max_attempts: int = 3, retry_delay: float = 0.5, backoff: float = 2.0, max_delay: float = 60.0,
                 visibility_timeout: float = 30.0, block: float = 1.0, batch: int = 16,
                 group_ttl: float = 7 * 24 * 3600, maxlen: int = 100_000, container: Container | None = None) -> None:
        redis = _import_redis()
        self.redis_errors: Any = importlib.import_module("redis.exceptions")
        if visibility_timeout <= 0 or block <= 0 or batch < 1 or group_ttl <= 0 or maxlen < 1:
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                "visibility_timeout, block and group_ttl must be > 0, batch and maxlen >= 1.")
        self.url = url
        self.prefix = prefix
        self.group = group
        self.retry = RetrySchedule(max_attempts, retry_delay, backoff, max_delay)
        self.visibility_timeout = float(visibility_timeout)
        self.block = float(block)
        self.batch = batch
        self.group_ttl = int(max(1, group_ttl))
        self.maxlen = maxlen
        self.container = container if container is not None else Container()
        self.dead_key = f"{prefix}:dead"
        retry_mod = importlib.import_module("redis.asyncio.retry")
        backoff_mod = importlib.import_module("redis.backoff")
        self.client: Any = redis.Redis.from_url(
            url, decode_responses=True,
            retry=retry_mod.Retry(backoff_mod.ExponentialBackoff(cap=1.0, base=0.05), 3),
            retry_on_error=[self.redis_errors.ConnectionError, self.redis_errors.TimeoutError])
        self._release = self.client.register_script(_RELEASE)
        self._consumers: dict[tuple[str, str], Consumer] = {}
        self._started = False

    def stream_key(self, name: str) -> str:
        """The stream of the events named ``name``."""
        return f"{self.prefix}:events:{name}"

    def group_key(self, group_id: str) -> str:
        """The list holding the events of ``group_id``."""
        return f"{self.prefix}:group:{group_id}"

    async def emit(self, name: str, data: Any = None, *, group_id: str | None = None,
                   metadata: dict[str, Any] | None = None) -> Event:
        """Add the event to its stream (or, with ``group_id``, to that group's list until it is
        released). Returns the event; a Redis failure raises ``StepworkError`` (``database_error``)."""
        event = make_event(name, data, group_id, metadata)
        try:
            if group_id is None:
                await self.client.xadd(self.stream_key(name), {"event": event.to_json()}, maxlen=self.maxlen,
                                       approximate=True)
            else:
                async with self.client.pipeline(transaction=True) as pipe:
                    pipe.rpush(self.group_key(group_id), event.to_json())
                    pipe.expire(self.group_key(group_id), self.group_ttl)
                    await pipe.execute()
        except self.redis_errors.RedisError as exc:
            raise self._error(f'emit event "{name}"', exc) from exc
        return event

    async def subscribe(self, name: str, handler: Handler, *, subscriber_id: str | None = None,
                        container: Container | None = None) -> str:
        """Deliver the events named ``name`` to ``handler`` (from :meth:`start` on): its consumer
        group is made now, so every event emitted after this call reaches it. The subscriber id
        (default: the handler's ``module.qualname``) names the group: keep it stable."""
        if name == WILDCARD or not isinstance(name, str) or not name:
            raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                                f'RedisEventBus subscribes to one event name at a time, got {name!r} ("*" is '
                                "only for InMemoryEventBus).")
        sid = handler_id(handler, subscriber_id)
        old = self._consumers.pop((name, sid), None)
        if old is not None:
            await old.stop(0)
        consumer = Consumer(self, name, sid, handler, container if container is not None else self.container)
        try:  # the group exists when this returns: every event emitted from now on reaches the subscriber
            await consumer.create_group()
        except self.redis_errors.RedisError as exc:
            raise self._error(f'subscribe "{sid}" to "{name}"', exc) from exc
        self._consumers[(name, sid)] = consumer
        if self._started:
            consumer.start()
        return sid

    async def unsubscribe(self, name: str, handler_or_id: Handler | str) -> bool:
        """Stop this process's consumer of that subscriber (its group stays in Redis)."""
        for key, consumer in list(self._consumers.items()):
            if key[0] == name and (consumer.subscriber_id == handler_or_id or consumer.handler is handler_or_id):
                del self._consumers[key]
                await consumer.stop(self.visibility_timeout)
                return True
        return False

    async def release_grouped_events(self, group_id: str) -> int:
        """Move the events held for ``group_id`` to their streams, atomically; returns how many."""
        try:
            return int(await self._release(keys=[self.group_key(group_id)],
                                           args=[f"{self.prefix}:events:", self.maxlen]))
        except self.redis_errors.RedisError as exc:
            raise self._error(f'release event group "{group_id}"', exc) from exc

    async def clear_grouped_events(self, group_id: str) -> int:
        """Drop the events held for ``group_id``; returns how many."""
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.llen(self.group_key(group_id))
                pipe.delete(self.group_key(group_id))
                count, _ = await pipe.execute()
            return int(count)
        except self.redis_errors.RedisError as exc:
            raise self._error(f'clear event group "{group_id}"', exc) from exc

    async def grouped_events(self, group_id: str) -> list[Event]:
        """The events held for ``group_id``."""
        return [Event.from_json(text) for text in await self.client.lrange(self.group_key(group_id), 0, -1)]

    async def dead_letters(self, count: int = 100) -> list[DeadLetter]:
        """The newest ``count`` dead letters, oldest first."""
        entries = await self.client.xrevrange(self.dead_key, count=count)
        out = []
        for _id, fields in reversed(entries):
            try:
                event = Event.from_json(fields["event"])
            except Exception:
                event = Event("(unreadable)", fields.get("event"))
            out.append(DeadLetter(event, fields.get("subscriber_id", ""), fields.get("error", ""),
                                  int(fields.get("attempts", 0))))
        return out

    async def start(self) -> None:
        """Start a consumer per subscription (subscriptions made later start at once)."""
        self._started = True
        for consumer in self._consumers.values():
            consumer.start()

    async def stop(self, grace: float = 10.0) -> None:
        """Let handlers under way finish (at most ``grace`` seconds), stop the consumers and close
        the connections. Unacknowledged messages stay pending for the next consumer."""
        self._started = False
        for consumer in list(self._consumers.values()):
            await consumer.stop(grace)
        await self.client.aclose()

    async def __aenter__(self) -> RedisEventBus:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    def _error(self, what: str, exc: BaseException) -> StepworkError:
        return StepworkError(StepworkError.Types.DB_ERROR, f"RedisEventBus could not {what} on {self._where()}: {exc}")

    def _where(self) -> str:
        return self.url.split("@")[-1]  # no password in messages

    def __repr__(self) -> str:
        return f"RedisEventBus({self._where()!r}, prefix={self.prefix!r})"
