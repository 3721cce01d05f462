"""Events from every worker (PostgreSQL): a subscriber of one engine sees the events of runs another
engine (another process, in production) drives; nothing is sent while nobody subscribes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from stepwork import WorkflowEngine, WorkflowResponse, create_step, create_workflow
from tests.conftest import throwaway_pg_database
from tests.engine.queue.conftest import until_finished

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with throwaway_pg_database("stepwork_events") as url:
        yield url


def two_steps(name: str) -> Any:
    a = create_step(f"{name}-a", lambda n: n + 1)
    b = create_step(f"{name}-b", lambda n: {"n": n, "blob": "x" * (n if n > 100 else 0)})
    return create_workflow({"name": name, "retention_time": 600}, lambda n: WorkflowResponse(b(a(n))))


def describe(event: dict[str, Any]) -> str:
    step = event.get("step")
    return event["event_type"] + (f" {step['definition']['action']}" if step else "")


async def until(check: Any, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.01)


async def test_a_subscriber_sees_the_events_of_runs_another_engine_drives(pg_url: str, wf_name: str) -> None:
    wf = two_steps(wf_name)
    seen: dict[str, list[dict[str, Any]]] = {}
    async with (WorkflowEngine(pg_url, poll_interval=0.2, concurrency=0) as front,
                WorkflowEngine(pg_url, poll_interval=0.2, concurrency=4) as worker):
        await front.subscribe(wf_name, lambda e: seen.setdefault(e["transaction_id"], []).append(e))
        await until(lambda: worker.shared is not None and worker.shared.wants(wf_name))
        for i in range(3):
            await front.run(wf, i, transaction_id=f"t{i}", queue=True)
        await until_finished(front, wf_name, 3)
        await until(lambda: all(s and s[-1]["event_type"] == "on_finish" for s in seen.values()) and len(seen) == 3)
        assert front.queue.claimed == 0 and worker.queue.claimed == 3  # every run was driven by the other
        assert worker.shared is not None and worker.shared.sent >= 3 * 6
    for i in range(3):
        events = seen[f"t{i}"]
        assert [describe(e) for e in events] == [
            "on_begin", f"on_step_begin {wf_name}-a", f"on_step_success {wf_name}-a",
            f"on_step_begin {wf_name}-b", f"on_step_success {wf_name}-b", "on_finish"], events
        assert all(e["workflow_id"] == wf_name for e in events)
        finish = events[-1]
        assert finish["state"] == "done" and finish["result"] == {"n": i + 1, "blob": ""}, finish
        assert events[2]["response"] == i + 1  # the step's output, as JSON


async def test_nothing_is_sent_while_nobody_subscribes_and_a_transaction_subscription_gets_its_own(
        pg_url: str, wf_name: str) -> None:
    wf = two_steps(wf_name)
    own: list[dict[str, Any]] = []
    async with (WorkflowEngine(pg_url, poll_interval=0.2, concurrency=0) as front,
                WorkflowEngine(pg_url, poll_interval=0.2, concurrency=4) as worker):
        assert worker.shared is not None and front.shared is not None
        await front.run(wf, 1, transaction_id="quiet", queue=True)
        await until_finished(front, wf_name, 1)
        assert worker.shared.sent == 0 and front.shared.received == 0

        await front.subscribe(wf_name, own.append, transaction_id="mine")
        await until(lambda: worker.shared.wants(wf_name))
        await front.run(wf, 2, transaction_id="other", queue=True)
        await front.run(wf, 3, transaction_id="mine", queue=True)
        await until_finished(front, wf_name, 3)
        await until(lambda: bool(own) and own[-1]["event_type"] == "on_finish")
        assert {e["transaction_id"] for e in own} == {"mine"}
        # The transaction's subscription ends with it; once the front says so, the worker stops sending.
        assert front.subscriptions.workflows() == frozenset()
        await front.shared.keepalive()
        await until(lambda: not worker.shared.wants(wf_name))
        sent = worker.shared.sent
        await front.run(wf, 4, transaction_id="after", queue=True)
        await until_finished(front, wf_name, 4)
        assert worker.shared.sent == sent


async def test_a_big_event_arrives_without_its_data_and_an_unsubscribed_engine_gets_nothing_more(
        pg_url: str, wf_name: str) -> None:
    wf = two_steps(wf_name)
    seen: list[dict[str, Any]] = []
    async with (WorkflowEngine(pg_url, poll_interval=0.2, concurrency=0) as front,
                WorkflowEngine(pg_url, poll_interval=0.2, concurrency=4) as worker):
        assert worker.shared is not None
        await front.subscribe(wf_name, seen.append, subscriber_id="audit")
        await until(lambda: worker.shared.wants(wf_name))
        await front.run(wf, 20_000, transaction_id="big", queue=True)  # a 20,000-character output
        await until(lambda: bool(seen) and seen[-1]["event_type"] == "on_finish")
        success = [e for e in seen if e["event_type"] == "on_step_success"]
        assert success[0].get("truncated") is None and success[0]["response"] == 20_001
        assert success[1]["truncated"] is True and "response" not in success[1]
        assert success[1]["step"]["id"].endswith(f"{wf_name}-b")
        assert seen[-1]["truncated"] is True and seen[-1]["state"] == "done"
        execution = await front.retrieve_workflow_execution(
            (await front.list_workflow_executions({"transaction_id": "big"}))[0].id)
        assert len(execution.context["data"]["invoke"][f"{wf_name}-b"]["blob"]) == 20_001  # read it from there

        await front.unsubscribe(wf_name, "audit")
        await until(lambda: not worker.shared.wants(wf_name))
        count = len(seen)
        await front.run(wf, 5, transaction_id="later", queue=True)
        await until_finished(front, wf_name, 2)
        await asyncio.sleep(0.2)
        assert len(seen) == count


async def test_an_engine_started_after_the_subscription_hears_of_it(pg_url: str, wf_name: str) -> None:
    wf = two_steps(wf_name)
    seen: list[str] = []
    async with WorkflowEngine(pg_url, poll_interval=0.2, concurrency=0) as front:
        await front.subscribe(wf_name, lambda e: seen.append(e["event_type"]))
        async with WorkflowEngine(pg_url, poll_interval=0.2, concurrency=4) as worker:
            # It asks when it starts listening; the front answers with what it follows.
            await until(lambda: worker.shared is not None and worker.shared.wants(wf_name))
            await front.run(wf, 1, transaction_id="late", queue=True)
            await until(lambda: "on_finish" in seen)
    assert seen[0] == "on_begin"


async def test_a_subscribe_cancelled_while_it_waits_leaves_no_subscription(pg_url: str, wf_name: str) -> None:
    async with WorkflowEngine(pg_url, poll_interval=0.2, concurrency=0) as front:
        task = asyncio.create_task(front.subscribe(wf_name, lambda e: None, subscriber_id="gone"))
        await asyncio.sleep(0)  # (registered, now waiting for its announcement)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert front.subscriptions.workflows() == frozenset()


async def test_identical_events_sent_together_all_arrive_and_a_silent_process_is_forgotten(
        pg_url: str, wf_name: str) -> None:
    seen: list[dict[str, Any]] = []
    async with (WorkflowEngine(pg_url, poll_interval=0.2, concurrency=0) as front,
                WorkflowEngine(pg_url, poll_interval=0.2, concurrency=0) as worker):
        assert worker.shared is not None
        await front.subscribe(wf_name, seen.append)
        await until(lambda: worker.shared.wants(wf_name))
        timeout = {"event_type": "on_timeout", "workflow_id": wf_name, "transaction_id": "t"}
        for _ in range(3):  # (one statement: PostgreSQL folds identical notifications of one commit)
            worker.shared.forward(dict(timeout))
        await until(lambda: len(seen) == 3)
        assert seen == [timeout] * 3

        # A process that stops repeating its interest (it died) is forgotten after its time to live.
        worker.shared._on_interest(json.dumps({"c": "stepwork_ev_dead", "w": ["elsewhere"], "ttl": 0.2}))
        assert worker.shared.wants("elsewhere")
        await asyncio.sleep(0.3)
        await worker.shared.keepalive()
        assert not worker.shared.wants("elsewhere") and worker.shared.wants(wf_name)
