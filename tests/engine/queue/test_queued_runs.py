"""Queued runs in one process: ``engine.run(..., queue=True)`` returns at once and an engine on the
database claims and drives the run; transaction ids, workflows a process lacks, the concurrency
bound, priorities, and the PostgreSQL wake-up (``LISTEN``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from stepwork import StepworkError, WorkflowEngine, WorkflowResponse, create_step, create_workflow
from tests.engine.queue.conftest import states, until_finished


def doubling(name: str, calls: list[Any] | None = None, delay: float = 0.0) -> Any:
    async def double(n: int) -> int:
        if calls is not None:
            calls.append(n)
        await asyncio.sleep(delay)
        return n * 2
    return create_workflow({"name": name, "retention_time": 3600},
                           lambda n: WorkflowResponse(create_step(f"{name}-double", double)(n)))


async def test_a_queued_run_returns_at_once_and_is_driven_to_done(database_url: str, wf_name: str) -> None:
    wf = doubling(wf_name)
    # A long poll_interval: the run queued here wakes this engine's claim loop directly.
    async with WorkflowEngine(database_url, poll_interval=60) as engine:
        started = time.monotonic()
        queued = await engine.run(wf, 21, transaction_id="q-1", queue=True)
        assert queued.transaction.state == "not_started" and queued.result is None
        assert queued.acknowledgement.to_dict() == {"workflow_id": wf_name, "transaction_id": "q-1",
                                                    "has_finished": False, "has_failed": False}
        assert (await until_finished(engine, wf_name, 1)) == {"q-1": "done"}
        assert time.monotonic() - started < 5
        [execution] = await engine.list_workflow_executions({"transaction_id": "q-1"})
        assert execution.context["data"] == {"payload": 21, "invoke": {f"{wf_name}-double": 42}, "compensate": {}}
        assert execution.run_id == queued.transaction.run_id


async def test_a_workflow_that_is_not_stored_is_stored_when_queued(database_url: str, wf_name: str) -> None:
    seen: list[dict[str, Any]] = []
    wf = create_workflow(wf_name, lambda n: WorkflowResponse(create_step(f"{wf_name}-echo", lambda v: v)(n)))
    async with WorkflowEngine(database_url, poll_interval=60) as engine:
        await engine.subscribe(wf_name, lambda e: seen.append(e) if e["event_type"] == "on_finish" else None)
        await engine.run(wf, "hello", queue=True)
        for _ in range(500):
            if seen:
                break
            await asyncio.sleep(0.01)
        assert [(e["state"], e["result"]) for e in seen] == [("done", "hello")]
        assert await states(engine, wf_name) == {}  # no retention_time: removed as it finished


async def test_the_same_transaction_id_while_queued(database_url: str, wf_name: str) -> None:
    calls: list[int] = []
    wf = doubling(wf_name, calls)
    async with WorkflowEngine(database_url, poll_interval=60, concurrency=0) as engine:  # claims nothing
        first = await engine.run(wf, 1, transaction_id="same", queue=True)
        again = await engine.run(wf, 1, transaction_id="same", queue=True)  # queued once, not twice
        assert again.transaction.run_id == first.transaction.run_id
        assert again.acknowledgement.has_finished is False
        # Run without queue: as for any unfinished execution, this call takes it and drives it.
        done = await engine.run(wf, transaction_id="same")
        assert (done.result, done.transaction.run_id, calls) == (2, first.transaction.run_id, [1])
        assert await states(engine, wf_name) == {"same": "done"}
        engine.queue.concurrency = 5
        await engine.fire_due()  # nothing is left in the queue
        assert calls == [1]


async def test_queued_runs_refuse_events_result_from_and_a_bad_priority(database_url: str, wf_name: str) -> None:
    wf = doubling(wf_name)
    async with WorkflowEngine(database_url, concurrency=0) as engine:
        for kwargs in ({"events": {"on_finish": print}}, {"result_from": f"{wf_name}-double"},
                       {"priority": "high"}):
            with pytest.raises(StepworkError) as err:
                await engine.run(wf, 1, queue=True, **kwargs)
            assert err.value.type == "invalid_data"
    with pytest.raises(StepworkError, match="concurrency must be"):
        WorkflowEngine(database_url, concurrency=-1)


async def test_fire_due_drives_the_queued_runs(database_url: str, wf_name: str) -> None:
    wf = doubling(wf_name)
    async with WorkflowEngine(database_url, poll_interval=60, concurrency=0) as engine:
        await engine.run(wf, 2, transaction_id="later", queue=True)
        await engine.fire_due()
        assert await states(engine, wf_name) == {"later": "not_started"}
        engine.queue.concurrency = 1
        await engine.fire_due()
        assert await states(engine, wf_name) == {"later": "done"}


async def test_a_process_without_the_workflow_leaves_its_queued_runs(database_url: str) -> None:
    """Store level: only the workflows asked for are claimed (an engine asks for those it has)."""
    wf = doubling("queue-foreign")
    async with WorkflowEngine(database_url, poll_interval=60, concurrency=0) as engine:
        await engine.run(wf, 1, transaction_id="foreign", queue=True)
        now = engine.clock.time()
        assert await engine.store.claim_queued("other", now + 30, 10, {"another-workflow"}) == []
        [claimed] = await engine.store.claim_queued("other", now + 30, 10, {"queue-foreign", "x"})
        assert claimed.key.transaction_id == "foreign"
        assert await engine.store.claim_queued("third", now + 30, 10, {"queue-foreign"}) == []  # claimed once


async def test_the_concurrency_bound_is_respected(database_url: str, wf_name: str) -> None:
    now_running = peak = 0

    async def slow(n: int) -> int:
        nonlocal now_running, peak
        now_running += 1
        peak = max(peak, now_running)
        await asyncio.sleep(0.05)
        now_running -= 1
        return n

    wf = create_workflow({"name": wf_name, "retention_time": 3600},
                         lambda n: WorkflowResponse(create_step(f"{wf_name}-slow", slow)(n)))
    async with WorkflowEngine(database_url, poll_interval=60, concurrency=0) as queuer:
        for n in range(12):
            await queuer.run(wf, n, transaction_id=f"c-{n}", queue=True)
        queuer.queue.concurrency = 3
        queuer.queue.wake.set()
        assert set((await until_finished(queuer, wf_name, 12)).values()) == {"done"}
    assert peak == 3


async def test_higher_priorities_are_claimed_first_then_the_oldest(database_url: str, wf_name: str) -> None:
    order: list[str] = []
    wf = create_workflow({"name": wf_name, "retention_time": 3600},
                         lambda tag: WorkflowResponse(create_step(f"{wf_name}-log", order.append)(tag)))
    async with WorkflowEngine(database_url, poll_interval=60, concurrency=0) as engine:
        for tag, priority in (("a0", 0), ("b5", 5), ("c1", 1), ("d5", 5), ("e0", 0), ("f-2", -2)):
            await engine.run(wf, tag, transaction_id=tag, priority=priority, queue=True)
        engine.queue.concurrency = 1  # one at a time: the order they are claimed in
        engine.queue.wake.set()
        await until_finished(engine, wf_name, 6)
    assert order == ["b5", "d5", "c1", "a0", "e0", "f-2"]


@pytest.mark.parametrize("shared_url", ["postgres"], indirect=True)
async def test_postgres_notify_wakes_another_engine_long_before_its_poll(shared_url: str, wf_name: str) -> None:
    wf = doubling(wf_name)
    async with (WorkflowEngine(shared_url, poll_interval=60) as worker,
                WorkflowEngine(shared_url, poll_interval=60, concurrency=0) as web):
        await asyncio.sleep(0.3)  # the worker's first claim (empty) and its LISTEN are done
        for attempt in range(3):  # the second and third after the worker has been idle a while
            started = time.monotonic()
            await web.run(wf, attempt, transaction_id=f"n-{attempt}", queue=True)
            await until_finished(web, wf_name, attempt + 1, within=10)
            assert time.monotonic() - started < 5  # (the poll would take 60 s)
            await asyncio.sleep(0.5)
        assert worker.queue.claimed == 3 and web.queue.claimed == 0
