"""Subscriptions as Server-Sent Events: a client receives the events of a run, and its subscription
is dropped when it goes away."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from stepwork.http import ApiKeys, sse
from tests.http.conftest import Served, eventually

BASE = "/admin/workflows-executions"
DEADLINE = 15.0


async def read_events(lines: AsyncIterator[str], until: Any,
                      deadline: float = DEADLINE) -> list[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of an SSE stream until ``until(event, data)`` or the stream's end;
    fails after ``deadline`` seconds."""
    events: list[tuple[str, dict[str, Any]]] = []
    name = None
    try:
        async with asyncio.timeout(deadline):
            async for line in lines:
                if line.startswith("event: "):
                    name = line[len("event: "):]
                elif line.startswith("data: ") and name is not None:
                    data = json.loads(line[len("data: "):])
                    events.append((name, data))
                    if until(name, data):
                        break
    except TimeoutError:
        raise AssertionError(f"the stream did not end within {deadline} s; events: {events}") from None
    return events


async def wait_subscribed(response: httpx.Response) -> AsyncIterator[str]:
    """The stream's lines, once the server says the subscription is in place."""
    lines = response.aiter_lines()
    async with asyncio.timeout(DEADLINE):
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
        assert r.json()["acknowledgement"]["hasFinished"] is True
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


@pytest.mark.parametrize("noticed_at", ["keep-alive", "event"])
async def test_a_stream_ends_when_its_key_is_revoked(served: Served, tx: str, noticed_at: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The key is checked again at each keep-alive, and before an event once the key cache's time
    (0.3 s here) passed: revoked, the stream gets `event: unauthorized` and ends."""
    monkeypatch.setattr(sse, "KEEP_ALIVE", 0.2 if noticed_at == "keep-alive" else 60.0)
    other = ApiKeys(served.database_url)
    try:
        info, secret = await other.create(f"sse {noticed_at}")
        async with served.client(key=secret) as listener, served.client() as runner, \
                listener.stream("GET", f"{BASE}/http-hello/subscribe") as stream:
            lines = await wait_subscribed(stream)
            await other.revoke(info.id)
            if noticed_at == "event":
                await asyncio.sleep(0.5)  # past the server's key cache time
                await runner.post(f"{BASE}/http-hello/run", json={"input": {"name": "Revoked"},
                                                                  "transaction_id": tx})
            events = await read_events(lines, lambda name, data: False)  # until the server ends it
    finally:
        await other.close()
    assert [name for name, _ in events] == ["unauthorized"], events
    assert events[0][1]["event_type"] == "unauthorized" and "revoked" in events[0][1]["message"]


async def test_a_valid_key_keeps_its_stream(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse, "KEEP_ALIVE", 0.1)
    async with served.client() as listener, listener.stream("GET", f"{BASE}/http-hello/subscribe") as stream:
        lines = await wait_subscribed(stream)
        keep_alives = 0
        async with asyncio.timeout(DEADLINE):
            async for line in lines:
                assert not line.startswith("event: "), line
                keep_alives += line == ": keep-alive"
                if keep_alives == 6:  # several checks of the key (cache time 0.3 s) passed
                    break


async def test_no_subscription_entry_is_left_for_a_workflow_name(served: Served) -> None:
    engine = served.extra["engine"]
    name = "no-such-workflow-" + served.key[-6:]
    async with served.client() as listener:
        async with listener.stream("GET", f"{BASE}/{name}/subscribe") as stream:
            await wait_subscribed(stream)
            assert name in engine.subscriptions._by_workflow

        async def pruned() -> bool:
            return name not in engine.subscriptions._by_workflow
        await eventually(pruned)
