"""Events from every worker: on a store whose processes notify each other (PostgreSQL), the
subscribers of one process (``engine.subscribe``, the HTTP SSE routes) see the events of runs that
any process sharing the database drives.

Nothing is sent while nobody wants it. A process tells the others which workflows its subscribers
follow (its *interest*) on :data:`INTEREST_CHANNEL`: when that set changes, again every
``lease_ttl`` seconds (an interest not repeated within three times that is forgotten, so a process
that died stops receiving), and when it starts listening (then it also asks the others for
theirs). A process driving a run of a wanted workflow sends each of its events, as JSON, on the
channel of each process that wants it, in order, batched while a send is under way.

A ``NOTIFY`` payload is at most 8,000 bytes: a bigger event goes out without its data (its type,
ids, state and step id, and ``"truncated": true``); the subscriber reads the rest from the stored
execution. Events are not stored: an event sent while a subscriber's process was not listening
(its connection was lost) is missed, as are those of a run started in the few milliseconds before
the other process heard of a new subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stepwork.engine.ids import new_ulid
from stepwork.engine.results import TransactionInfo
from stepwork.orchestration.transaction import StepFailure
from stepwork.storage.base import QUEUE_CHANNEL
from stepwork.storage.serialization import to_jsonable

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine

__all__ = ["INTEREST_CHANNEL", "MAX_PAYLOAD", "SharedEvents", "event_json", "listen"]

logger = logging.getLogger("stepwork.engine")

INTEREST_CHANNEL = "stepwork_interest"
MAX_PAYLOAD = 7900  # bytes of one event's JSON (PostgreSQL's NOTIFY takes payloads under 8,000)
_BATCH = 500  # notifications per statement, at most
_INBOX = 10_000  # events received and not yet handed to subscribers, at most (more are dropped, logged)
_ECHO_WAIT = 2.0  # seconds a subscription waits for its announcement to come back (it is heard then)


async def listen(engine: WorkflowEngine) -> None:
    """The engine's notifications from other processes, until cancelled: queued runs (its claim loop
    wakes) and, with :class:`SharedEvents`, interests and events."""
    shared = engine.shared
    channels: dict[str, Callable[[str], None]] = {QUEUE_CHANNEL: lambda _payload: engine.queue.wake.set()}
    if shared is not None:
        shared.start()
        engine.subscriptions.remote = shared
        channels.update(shared.channels())

    def on_listen() -> None:
        engine.queue.wake.set()  # what was queued while nobody listened here
        if shared is not None:
            shared.on_listen()
    await engine.store.watch(channels, on_listen, shared.on_lost if shared is not None else None)


def _plain(value: Any) -> Any:
    if isinstance(value, StepFailure):
        return value.to_dict()
    if isinstance(value, TransactionInfo):
        return {"transaction_id": value.transaction_id, "state": value.state.value}
    if isinstance(value, BaseException):
        return {"name": type(value).__name__, "message": str(value)}
    try:
        return to_jsonable(value)
    except Exception:
        return repr(value)


def event_json(event: dict[str, Any]) -> str:
    """An engine event as JSON text: step failures, transaction infos and exceptions as dicts,
    values as stored payloads are converted, anything else as its ``repr``."""
    return json.dumps(event, default=_plain, separators=(",", ":"))


def _slim(event: dict[str, Any]) -> str:
    """An event too big to send, without its data."""
    out: dict[str, Any] = {k: event[k] for k in ("event_type", "workflow_id", "transaction_id", "state")
                           if k in event}
    step = event.get("step")
    if isinstance(step, dict) and "id" in step:
        out["step"] = {"id": step["id"]}
    out["truncated"] = True
    return event_json(out)


class SharedEvents:
    """One engine's side of the shared events: what it forwards, what it receives."""

    def __init__(self, engine: WorkflowEngine) -> None:
        self.engine = engine
        # This process's channel: a name PostgreSQL takes (an identifier under 64 bytes).
        self.channel = "stepwork_ev_" + hashlib.sha1(engine.owner.encode()).hexdigest()[:24]
        self._remote: dict[str, tuple[frozenset[str] | None, float]] = {}  # channel -> (workflows | all, expiry)
        self._targets: dict[str, list[str]] = {}  # workflow -> channels (cache, of unexpired interests)
        self._all: list[str] = []  # channels that want every workflow
        self._announced: frozenset[str] = frozenset()
        self._announced_at = 0.0
        self._echo: dict[str, asyncio.Future[None]] = {}
        self._outbox: list[tuple[str, str]] = []
        self._sender: asyncio.Task[None] | None = None
        self._inbox: asyncio.Queue[dict[str, Any]] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self.listening = False  # (a subscription waits to hear its announcement only then)
        self._stopped = False
        self._seq = 0  # numbers this process's events: identical notifications of one commit would be one
        self.sent = 0  # events sent to other processes (one per event and process)
        self.received = 0
        self._dropped_at = 0.0

    # -- what the listening connection hands over -------------------------------------------------

    def channels(self) -> dict[str, Callable[[str], None]]:
        """The channels to listen on, and their handlers."""
        return {INTEREST_CHANNEL: self._on_interest, self.channel: self._on_event}

    def on_listen(self) -> None:
        """Listening (again): tell the others this process's interest, and ask for theirs."""
        self.listening = True
        self._start_dispatcher()
        self._spawn(self.announce(ask=True))

    def on_lost(self) -> None:
        """Not listening any more (until the connection is made again): nothing to wait for."""
        self.listening = False

    def start(self) -> None:
        self._stopped = False
        self._start_dispatcher()

    def _start_dispatcher(self) -> None:
        if self._dispatcher is None or self._dispatcher.done():
            self._inbox = asyncio.Queue(_INBOX)
            self._dispatcher = asyncio.create_task(self._dispatch(), name="stepwork-shared-events")

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work, name="stepwork-interest")
        self.engine.background.add(task)
        task.add_done_callback(self.engine.background.discard)

    # -- interest ---------------------------------------------------------------------------------

    def wants(self, workflow_id: str) -> bool:
        return bool(self._all) or workflow_id in self._targets

    async def sync(self) -> None:
        """Tell the others if the workflows this process follows changed; for a new one, wait (up to
        2 s, while listening) until the announcement has come back through the database, so that the
        others have it too."""
        current = self.engine.subscriptions.workflows()
        if current != self._announced:
            await self.announce(wait=not current <= self._announced)  # (a removal need not be heard at once)

    async def keepalive(self) -> None:
        """Repeat this process's interest before the others forget it; forget theirs that ran out."""
        now = time.monotonic()
        expired = [c for c, (_, until) in self._remote.items() if until <= now]
        for channel in expired:
            del self._remote[channel]
        if expired:
            self._rebuild()
        current = self.engine.subscriptions.workflows()
        if current != self._announced or (current and now - self._announced_at >= self.engine.lease_ttl):
            await self.announce()

    async def announce(self, *, ask: bool = False, wait: bool = False, leaving: bool = False) -> None:
        workflows = frozenset() if leaving else self.engine.subscriptions.workflows()
        ttl = 3 * self.engine.lease_ttl
        message: dict[str, Any] = {"c": self.channel, "w": sorted(workflows), "ttl": ttl}
        if ask:
            message["ask"] = True
        nonce = new_ulid()
        message["n"] = nonce
        payload = json.dumps(message, separators=(",", ":"))
        if len(payload.encode()) > MAX_PAYLOAD:  # very many workflows: all of them then
            message["w"] = "*"
            payload = json.dumps(message, separators=(",", ":"))
        echo: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        wait = wait and self.listening
        if wait:
            self._echo[nonce] = echo
        try:
            await self.engine.store.notify([(INTEREST_CHANNEL, payload)])
            self._announced = workflows
            self._announced_at = time.monotonic()
            if wait:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(echo, _ECHO_WAIT)
        except Exception as exc:  # said again at the next keep-alive
            logger.warning("Telling other processes which workflows this one follows failed (%s); "
                           "it is tried again in %g s.", exc, self.engine.lease_ttl / 3)
        finally:
            self._echo.pop(nonce, None)

    def _on_interest(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            channel = str(message["c"])
            wanted = message["w"]
            ttl = float(message["ttl"])
        except (ValueError, KeyError, TypeError):
            logger.warning("An unreadable interest message was ignored: %.200s", payload)
            return
        if channel == self.channel:
            echo = self._echo.get(str(message.get("n")))
            if echo is not None and not echo.done():
                echo.set_result(None)
            return
        if wanted == "*":
            self._remote[channel] = (None, time.monotonic() + ttl)
        elif wanted:
            self._remote[channel] = (frozenset(str(w) for w in wanted), time.monotonic() + ttl)
        else:
            self._remote.pop(channel, None)
        self._rebuild()
        if message.get("ask") and self.engine.subscriptions.workflows():
            self._spawn(self.announce())

    def _rebuild(self) -> None:
        targets: dict[str, list[str]] = {}
        every: list[str] = []
        for channel, (workflows, _until) in self._remote.items():
            if workflows is None:
                every.append(channel)
                continue
            for workflow_id in workflows:
                targets.setdefault(workflow_id, []).append(channel)
        self._targets, self._all = targets, every

    # -- sending ----------------------------------------------------------------------------------

    def forward(self, event: dict[str, Any]) -> None:
        """Send ``event`` to the processes that want its workflow (in order, soon, batched)."""
        channels = [*self._targets.get(event.get("workflow_id", ""), ()), *self._all]
        if not channels or self._stopped:
            return
        self._seq += 1
        head = f'{{"s":{self._seq},"e":'
        try:
            payload = head + event_json(event) + "}"
        except Exception:  # (a value JSON cannot hold even as a repr)
            payload = head + _slim(event) + "}"
        if len(payload.encode()) > MAX_PAYLOAD:
            payload = head + _slim(event) + "}"
        self._outbox.extend((channel, payload) for channel in channels)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name="stepwork-send-events")

    async def _send(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox[:_BATCH], self._outbox[_BATCH:]
            try:
                await self.engine.store.notify(batch)
                self.sent += len(batch)
            except Exception as exc:
                logger.warning("Sending %d events to other processes' subscribers failed (%s); they are lost.",
                               len(batch), exc)

    # -- receiving --------------------------------------------------------------------------------

    def _on_event(self, payload: str) -> None:
        try:
            event = json.loads(payload)["e"]
        except (ValueError, KeyError, TypeError):
            logger.warning("An unreadable event was ignored: %.200s", payload)
            return
        if not isinstance(event, dict) or self._inbox is None:
            return
        try:
            self._inbox.put_nowait(event)
        except asyncio.QueueFull:
            now = time.monotonic()
            if now - self._dropped_at > 10:
                self._dropped_at = now
                logger.warning("Events from other processes come faster than this process's subscribers take "
                               "them (%d waiting); some are dropped.", _INBOX)

    async def _dispatch(self) -> None:
        inbox = self._inbox
        assert inbox is not None
        subs = self.engine.subscriptions
        while True:
            event = await inbox.get()
            workflow_id = str(event.get("workflow_id", ""))
            transaction_id = str(event.get("transaction_id", ""))
            self.received += 1
            for fn in subs.subscribed(workflow_id, transaction_id):
                try:
                    r = fn(dict(event))
                    if inspect.isawaitable(r):
                        await r
                except Exception:
                    logger.exception("A subscriber of workflow %s raised on %s; ignored.", workflow_id,
                                     event.get("event_type"))
            if event.get("event_type") == "on_finish":
                subs.drop_transaction(workflow_id, transaction_id)

    # -- stopping ---------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Send what is waiting, tell the others this process follows nothing any more, stop."""
        self._stopped = True  # (a run still going forwards nothing more: the store closes)
        self.listening = False
        with contextlib.suppress(Exception):
            if self._sender is not None and not self._sender.done():
                await asyncio.wait_for(asyncio.shield(self._sender), 2.0)
        if self._announced:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.announce(leaving=True), 2.0)
        for task in (self._sender, self._dispatcher):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._sender = self._dispatcher = None
        self._remote.clear()
        self._rebuild()
        self._announced = frozenset()
