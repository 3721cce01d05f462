"""Subscriptions as Server-Sent Events: ``event: {event_type}`` and the event as JSON ``data``.

A stream starts with a ``: subscribed`` comment once the engine subscription is in place (a client
may start the run then), sends a ``: keep-alive`` comment every ``KEEP_ALIVE`` seconds of silence,
and unsubscribes when the client goes away. A transaction's stream ends after its ``on_finish``
(the engine sends nothing more for it). A client that reads too slowly for ``QUEUE_SIZE`` events
gets an ``event: overflow`` and the stream ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from stepwork.engine.ids import new_ulid
from stepwork.engine.results import TransactionInfo
from stepwork.http.params import check_id
from stepwork.http.runtime import runtime
from stepwork.orchestration.transaction import StepFailure
from stepwork.storage.serialization import to_jsonable

__all__ = ["KEEP_ALIVE", "QUEUE_SIZE", "event_data", "router"]

router = APIRouter()
KEEP_ALIVE = 15.0
QUEUE_SIZE = 1000
_STREAM = {200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                 "description": "Server-Sent Events: `event: {event_type}`, `data: {JSON event}`"}}
_OVERFLOW = {"event_type": "overflow"}


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


def event_data(event: dict[str, Any]) -> str:
    """An engine event as one SSE message."""
    data = json.dumps(event, default=_plain, separators=(",", ":"))
    return f"event: {event.get('event_type', 'message')}\ndata: {data}\n\n"


async def _stream(request: Request, workflow_id: str, transaction_id: str | None) -> AsyncIterator[str]:
    engine = runtime(request).engine
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
    subscriber_id = "__sse__" + new_ulid()

    def deliver(event: dict[str, Any]) -> None:
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            queue._queue.clear()  # type: ignore[attr-defined]  # the reader is gone or stuck: make room
            queue.put_nowait(_OVERFLOW)

    await engine.subscribe(workflow_id, deliver, transaction_id=transaction_id, subscriber_id=subscriber_id)
    try:
        yield ": subscribed\n\n"
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), KEEP_ALIVE)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            yield event_data(event)
            if event is _OVERFLOW or (transaction_id is not None and event.get("event_type") == "on_finish"):
                return
    finally:
        await engine.unsubscribe(workflow_id, subscriber_id, transaction_id=transaction_id)


def _response(request: Request, workflow_id: str, transaction_id: str | None) -> StreamingResponse:
    check_id(workflow_id, "workflow_id")
    if transaction_id is not None:
        check_id(transaction_id, "transaction_id")
    return StreamingResponse(_stream(request, workflow_id, transaction_id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/{workflow_id}/subscribe", response_class=StreamingResponse, responses=_STREAM,  # type: ignore[arg-type]
            summary="Subscribe to a workflow's events (SSE)")
async def subscribe_workflow(request: Request, workflow_id: str) -> StreamingResponse:
    """Every event of every run of ``workflow_id``, as Server-Sent Events."""
    return _response(request, workflow_id, None)


@router.get("/{workflow_id}/{transaction_id}/subscribe", response_class=StreamingResponse,
            responses=_STREAM,  # type: ignore[arg-type]
            summary="Subscribe to a transaction's events (SSE)")
async def subscribe_transaction(request: Request, workflow_id: str, transaction_id: str) -> StreamingResponse:
    """The events of one transaction of ``workflow_id``; the stream ends after its ``on_finish``."""
    return _response(request, workflow_id, transaction_id)
