"""Engine subscriptions, and the listener view a run emits its events through."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, Protocol

from stepwork.engine.log_fields import log_extra
from stepwork.errors import StepworkError

__all__ = ["DRIVE_END", "Listeners", "Subscriptions"]

logger = logging.getLogger("stepwork.engine")

# Not a per-run event: engine-wide subscribers (``add_global``) only are told, each time this process
# stops driving a run (it finished, it waits, or the drive raised), with ``run_id``, ``state``,
# ``finished``, ``parent_step_idempotency_key``, ``errors`` and ``failure``. Telemetry ends its spans
# there; a run that waits for hours keeps nothing open in memory.
DRIVE_END = "stepwork.drive_end"

Subscriber = Callable[[dict[str, Any]], Any]


class Forwarder(Protocol):
    """Where events go that subscribers of other processes want (see :mod:`.shared_events`)."""

    def wants(self, workflow_id: str) -> bool: ...

    def forward(self, event: dict[str, Any]) -> None: ...


class Subscriptions:
    """Subscribers by workflow, optionally scoped to one transaction."""

    def __init__(self) -> None:
        # workflow_id -> {subscriber key -> (subscriber, transaction_id or None)}
        self._by_workflow: dict[str, dict[object, tuple[Subscriber, str | None]]] = {}
        # key -> subscriber of every run's events (engine-wide, e.g. an event bus publishing them)
        self._global: dict[object, Subscriber] = {}
        # Other processes' subscribers (PostgreSQL): told of the events of the workflows they want.
        self.remote: Forwarder | None = None

    def add_global(self, subscriber: Subscriber, subscriber_id: str | None = None) -> None:
        """Give ``subscriber`` the events of every run of every workflow (after the runs' own
        subscribers). The same function or ``subscriber_id`` again replaces the earlier one."""
        if not callable(subscriber):
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f"A subscriber must be callable, got {subscriber!r}.")
        self._global[subscriber_id if subscriber_id is not None else subscriber] = subscriber

    def remove_global(self, subscriber_or_id: object) -> bool:
        """Remove an engine-wide subscriber by function or id; True if there was one."""
        for key, fn in list(self._global.items()):
            if key == subscriber_or_id or fn is subscriber_or_id:
                del self._global[key]
                return True
        return False

    def subscribe(self, workflow_id: str, subscriber: Subscriber, transaction_id: str | None,
                  subscriber_id: str | None) -> None:
        """Give ``subscriber`` the events of ``workflow_id`` (of one transaction if given)."""
        if not callable(subscriber):
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f"A subscriber must be callable, got {subscriber!r}.")
        key: object = subscriber_id if subscriber_id is not None else subscriber
        self._by_workflow.setdefault(workflow_id, {})[key] = (subscriber, transaction_id)

    def unsubscribe(self, workflow_id: str, subscriber_or_id: object, transaction_id: str | None) -> bool:
        """Remove a subscriber (by function or id); True if there was one. A workflow left without
        subscribers is forgotten."""
        subs = self._by_workflow.get(workflow_id)
        if not subs:
            return False
        for key, (fn, tid) in list(subs.items()):
            matches = key == subscriber_or_id or fn is subscriber_or_id
            if matches and (transaction_id is None or tid == transaction_id):
                del subs[key]
                if not subs:  # no entry left behind per workflow name a client once subscribed to
                    del self._by_workflow[workflow_id]
                return True
        return False

    def global_subscribers(self) -> list[Subscriber]:
        """The engine-wide subscribers."""
        return list(self._global.values())

    def workflows(self) -> frozenset[str]:
        """The workflows this process's own subscribers (not the engine-wide ones) follow."""
        return frozenset(self._by_workflow)

    def has(self, workflow_id: str) -> bool:
        remote = self.remote
        return (bool(self._by_workflow.get(workflow_id)) or bool(self._global)
                or (remote is not None and remote.wants(workflow_id)))

    def matching(self, workflow_id: str, transaction_id: str) -> list[Subscriber]:
        """The subscribers of one run's events here, the engine-wide ones, and other processes'."""
        out = [*self.subscribed(workflow_id, transaction_id), *self._global.values()]
        remote = self.remote
        if remote is not None and remote.wants(workflow_id):
            out.append(remote.forward)
        return out

    def subscribed(self, workflow_id: str, transaction_id: str) -> list[Subscriber]:
        """The subscribers of one run's events that subscribed to its workflow (or transaction) here."""
        subs = self._by_workflow.get(workflow_id)
        if not subs:
            return []
        return [fn for fn, tid in subs.values() if tid is None or tid == transaction_id]

    def drop_transaction(self, workflow_id: str, transaction_id: str) -> None:
        subs = self._by_workflow.get(workflow_id)
        if subs:
            for key, (_fn, tid) in list(subs.items()):
                if tid == transaction_id:
                    del subs[key]
            if not subs:
                del self._by_workflow[workflow_id]


class Listeners:
    """What a run emits through: its own ``events`` handlers, then the engine's subscribers."""

    __slots__ = ("_per_run", "_subs", "_transaction_id", "_workflow_id")

    def __init__(self, subs: Subscriptions, workflow_id: str, transaction_id: str,
                 per_run: dict[str, Any] | None) -> None:
        self._subs = subs
        self._workflow_id = workflow_id
        self._transaction_id = transaction_id
        self._per_run = per_run or {}

    def __bool__(self) -> bool:
        return bool(self._per_run) or self._subs.has(self._workflow_id)

    def for_child(self, workflow_id: str, transaction_id: str) -> Listeners:
        """The listeners of a nested run of this one: the engine's subscribers, none of its own."""
        return Listeners(self._subs, workflow_id, transaction_id, None)

    def get(self, event_type: str) -> Callable[[dict[str, Any]], Any] | None:
        own = self._per_run.get(event_type)
        if event_type == DRIVE_END:
            subscribers = self._subs.global_subscribers()
        else:
            subscribers = self._subs.matching(self._workflow_id, self._transaction_id)
        if own is None and not subscribers:
            return None

        async def dispatch(event: dict[str, Any]) -> None:
            if own is not None:
                try:
                    r = own(event)
                    if inspect.isawaitable(r):
                        await r
                except Exception:
                    logger.exception("The %s handler of workflow %s raised; ignored.", event_type,
                                     self._workflow_id, extra=_extra(event))
            for fn in subscribers:
                try:
                    r = fn(dict(event))
                    if inspect.isawaitable(r):
                        await r
                except Exception:
                    logger.exception("A subscriber of workflow %s raised on %s; ignored.", self._workflow_id,
                                     event_type, extra=_extra(event))
            if event_type == "on_finish":
                self._subs.drop_transaction(self._workflow_id, self._transaction_id)
        return dispatch


def _extra(event: dict[str, Any]) -> dict[str, Any]:
    step = event.get("step")
    return log_extra(event.get("workflow_id"), event.get("transaction_id"), event.get("run_id"),
                     step.get("id") if isinstance(step, dict) else None)
