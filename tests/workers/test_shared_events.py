"""Events from every worker (issue 12), across processes: a subscriber in this process (its engine
drives nothing) sees the events of the queued runs three worker processes drive, including those of a
run a SIGKILLed worker had begun and another took over; each run's events end with one ``on_finish``
in the state its execution ended in."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Any

import pytest

from stepwork import StepworkError, WorkflowEngine, WorkflowResponse, create_step, create_workflow
from tests.workers.harness import Fleet, PrivatePostgres, assert_report, until, verify
from tests.workers.journal import EXPECTED_STATE, KIND_WORKFLOW
from tests.workers.test_queued_faults import PRODUCER, in_the_middle

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

LEASE_TTL = 2.0


async def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        await asyncio.sleep(0.02)


async def test_a_subscriber_sees_the_events_of_runs_every_worker_drives(
        make_fleet: Callable[..., Fleet], scale_out_url: str) -> None:
    events: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    fleet = make_fleet(lease_ttl=LEASE_TTL)
    for i in range(3):
        fleet.start(i, "", extra=("--engine-concurrency", "2", "--local-finish"))
    fleet.start(PRODUCER, "slow=6,fail=2,retry=1", extra=("--queue", "--engine-concurrency", "0", "--local-finish"))
    await fleet.wait_ready()
    async with WorkflowEngine(scale_out_url, concurrency=0, lease_ttl=LEASE_TTL, poll_interval=0.2) as watcher:
        for workflow_id in KIND_WORKFLOW.values():
            await watcher.subscribe(workflow_id, lambda e: events[e["transaction_id"]].append(e))
        fleet.go()
        await until(in_the_middle(fleet, 0), 30, "worker 0 in the middle of a queued run", fleet)
        pid = fleet.pid(0)
        lines = [line for line in fleet.journal() if line["pid"] == pid and line["event"] == "start"]
        cut = ({line["tid"] for line in lines if line["step"] == "slow-3"}
               - {line["tid"] for line in lines if line["step"] == "slow-5"})
        fleet.kill(0)
        report, _seen, journal = await verify(fleet, timeout=90)
        assert_report(report, journal, fleet)
        expected = {tid: wf for wf, tid in fleet.expected}

        def every_run_finished() -> bool:
            return all(any(e["event_type"] == "on_finish" for e in events[tid]) for tid in expected)
        await until(every_run_finished, 20, "an on_finish event for every run", fleet)
        assert watcher.queue.claimed == 0
    for tid, wf in expected.items():
        run = events[tid]
        assert run[0]["event_type"] == "on_begin", (tid, [e["event_type"] for e in run])
        finishes = [e for e in run if e["event_type"] == "on_finish"]
        assert len(finishes) == 1 and finishes[0]["state"] == EXPECTED_STATE[wf], (tid, finishes)
        assert run[-1] is finishes[0]
    for tid in cut:  # killed in their middle: taken over (recovered) by another worker, seen there too
        assert "on_resume" in [e["event_type"] for e in events[tid]], (tid, events[tid])
    await fleet.stop_all()


async def test_after_a_postgresql_restart_subscriptions_reach_the_workers_again(
        private_postgres: PrivatePostgres | None, scale_out_url: str, wf_name: str) -> None:
    """Interests are not stored: a subscriber's process announces its own again when it listens again,
    and answers a worker that starts afterwards and asks."""
    if private_postgres is None:
        pytest.skip("needs a PostgreSQL server of its own to restart (initdb/pg_ctl)")
    wf = create_workflow({"name": wf_name, "retention_time": 600},
                         lambda n: WorkflowResponse(create_step(f"{wf_name}-double", lambda v: v * 2)(n)))
    seen: list[dict[str, Any]] = []
    async with WorkflowEngine(scale_out_url, concurrency=0, lease_ttl=LEASE_TTL, poll_interval=0.2) as front:
        await front.subscribe(wf_name, seen.append)
        try:
            await asyncio.to_thread(private_postgres.restart, "immediate", 1.0)
        finally:
            await asyncio.to_thread(private_postgres.ensure_running)
        async with WorkflowEngine(scale_out_url, concurrency=2, lease_ttl=LEASE_TTL, poll_interval=0.2) as worker:
            await _wait(lambda: worker.shared is not None and worker.shared.wants(wf_name), 20,
                        "the worker heard of the subscription")
            for _ in range(100):  # (the front's statements reconnect on their own; a first try may fail)
                try:
                    await front.run(wf, 21, transaction_id="after-restart", queue=True)
                    break
                except StepworkError:
                    await asyncio.sleep(0.1)
            await _wait(lambda: any(e["event_type"] == "on_finish" for e in seen), 20, "the run's on_finish")
    assert [e["event_type"] for e in seen] == ["on_begin", "on_step_begin", "on_step_success", "on_finish"]
    assert seen[-1]["result"] == 42
