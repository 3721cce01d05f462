"""Subscriptions as Server-Sent Events: a client receives the events of a run, and its subscription
is dropped when it goes away."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.http.conftest import Served, eventually

BASE = "/admin/workflows-executions"


async def read_events(lines: AsyncIterator[str], until: Any) -> list[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of an SSE stream until ``until(event, data)`` or the stream's end."""
    events: list[tuple[str, dict[str, Any]]] = []
    name = None
    async for line in lines:
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: ") and name is not None:
            data = json.loads(line[len("data: "):])
            events.append((name, data))
            if until(name, data):
                break
    return events


async def wait_subscribed(response: httpx.Response) -> AsyncIterator[str]:
    """The stream's lines, once the server says the subscription is in place."""
    lines = response.aiter_lines()
    async for line in lines:
        if line == ": subscribed":
            return lines
    raise AssertionError("the stream ended before it was subscribed")


async def test_a_transaction_stream_carries_the_run_and_ends_with_it(served: Served, tx: str) -> None:
    async with served.client() as listener, served.client() as runner, \
            listener.stream("GET", f"{BASE}/http-hello/{tx}/subscribe") as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        lines = await wait_subscribed(stream)
        r = await runner.post(f"{BASE}/http-hello/run", json={"input": {"name": "Sse"}, "transaction_id": tx})
        assert r.json()["acknowledgement"]["has_finished"] is True
        events = await read_events(lines, lambda name, data: False)  # the server ends it after on_finish
    names = [name for name, _ in events]
    assert names[0] == "on_begin" and names[-1] == "on_finish"
    assert {"on_step_begin", "on_step_success"} <= set(names)
    assert all(data["event_type"] == name and data["transaction_id"] == tx and data["workflow_id"] == "http-hello"
               for name, data in events)
    success = next(data for name, data in events if name == "on_step_success")
    assert success["step"]["id"].endswith("http-greet")


async def test_a_workflow_stream_is_unsubscribed_when_the_client_leaves(served: Served, tx: str) -> None:
    engine = served.extra["engine"]
    async with served.client() as listener, served.client() as runner:
        async with listener.stream("GET", f"{BASE}/http-approval/subscribe") as stream:
            lines = await wait_subscribed(stream)
            assert engine.subscriptions.has("http-approval")
            await runner.post(f"{BASE}/http-approval/run", json={"input": "x", "transaction_id": tx})
            events = await read_events(lines, lambda name, data: name == "on_step_awaiting")
            assert [data["transaction_id"] for _, data in events] == [tx] * len(events)
            assert events[-1][1]["step"]["id"].endswith("http-approve")

        async def gone() -> bool:
            return not engine.subscriptions.has("http-approval")
        await eventually(gone)
