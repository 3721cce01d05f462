"""Subscriptions as Server-Sent Events: ``event: {event_type}`` and the event as JSON ``data``.

A stream starts with a ``: subscribed`` comment once the engine subscription is in place (a client
may start the run then), sends a ``: keep-alive`` comment every ``KEEP_ALIVE`` seconds of silence,
and unsubscribes when the client goes away. A transaction's stream ends after its ``on_finish``
(the engine sends nothing more for it). A client that reads too slowly for ``QUEUE_SIZE`` events
gets an ``event: overflow`` and the stream ends.

The stream's credentials are checked again while it is open: at every keep-alive, and before an
event once the key cache's time (``cache_ttl`` of :class:`~stepwork.http.keys.ApiKeys`) has passed
since the last check; a key revoked meanwhile gets an ``event: unauthorized`` and the stream ends.
When the server shuts down (:meth:`~stepwork.http.runtime.Runtime.shut_down`) every stream ends at
once. These routes take no query parameters (any is a 400).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from stepwork.engine.ids import new_ulid
from stepwork.engine.shared_events import event_json
from stepwork.errors import StepworkError
from stepwork.http.params import check_id
from stepwork.http.runtime import Runtime, no_query_parameters, runtime

__all__ = ["KEEP_ALIVE", "QUEUE_SIZE", "event_data", "router"]

router = APIRouter(dependencies=[Depends(no_query_parameters)])
KEEP_ALIVE = 15.0
QUEUE_SIZE = 1000
_STREAM = {200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                 "description": "Server-Sent Events: `event: {event_type}`, `data: {JSON event}`"}}
_OVERFLOW = {"event_type": "overflow"}
_SHUTDOWN = {"event_type": "shutdown"}
_UNAUTHORIZED = {"event_type": "unauthorized",
                 "message": "The API key of this stream is no longer valid (revoked); the stream ends."}


def event_data(event: dict[str, Any]) -> str:
    """An engine event as one SSE message."""
    data = event_json(event)
    return f"event: {event.get('event_type', 'message')}\ndata: {data}\n\n"


async def _authorized(rt: Runtime, request: Request) -> bool:
    """Whether the request's credentials (its key, or its session) are still valid."""
    try:
        await rt.auth.check(request)
    except StepworkError:
        return False
    return True


async def _stream(request: Request, workflow_id: str, transaction_id: str | None) -> AsyncIterator[str]:
    rt = runtime(request)
    engine = rt.engine
    ttl = rt.auth.keys.cache_ttl if rt.auth.keys is not None else KEEP_ALIVE
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
    subscriber_id = "__sse__" + new_ulid()

    def push(event: dict[str, Any]) -> None:
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            queue._queue.clear()  # type: ignore[attr-defined]  # the reader is gone or stuck: make room
            queue.put_nowait(_OVERFLOW if event is not _SHUTDOWN else _SHUTDOWN)

    await engine.subscribe(workflow_id, push, transaction_id=transaction_id, subscriber_id=subscriber_id)
    stopping = asyncio.ensure_future(rt.shutting_down.wait())
    stopping.add_done_callback(lambda waited: None if waited.cancelled() else push(_SHUTDOWN))
    checked = time.monotonic()
    try:
        yield ": subscribed\n\n"
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), KEEP_ALIVE)
            except TimeoutError:
                event = None
            if event is _SHUTDOWN:
                return
            if event is None or time.monotonic() - checked >= ttl:
                if not await _authorized(rt, request):
                    yield event_data(_UNAUTHORIZED)
                    return
                checked = time.monotonic()
            if event is None:
                yield ": keep-alive\n\n"
                continue
            yield event_data(event)
            if event is _OVERFLOW or (transaction_id is not None and event.get("event_type") == "on_finish"):
                return
    finally:
        stopping.cancel()
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
