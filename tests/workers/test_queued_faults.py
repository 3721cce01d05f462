"""Queued runs under faults (issue 12): a producer process queues runs (``engine.run(..., queue=True)``,
its engine with ``concurrency=0``, so it claims none) and three worker processes claim and drive them,
while one is SIGKILLed mid-run, another is SIGSTOPped past its lease then SIGCONTed, and PostgreSQL is
restarted mid-drain. The invariants of :func:`harness.check` hold afterwards: every queued run finished
exactly once in its expected state, no completed step invoked again (only the one in flight at a fault,
under its idempotency key), nothing left queued or owned by a dead worker. Reliability cases R04, R17.

Plus priorities: with one slot, a worker claims the queued runs highest priority first, then oldest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from stepwork import StepContext, WorkflowEngine, create_step, create_workflow
from tests.workers.harness import Fleet, PrivatePostgres, assert_report, until, verify

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

LEASE_TTL = 2.0
PRODUCER = 3
QUEUED = "slow=12,fail=2,retry=2,async=2"


def in_the_middle(fleet: Fleet, index: int) -> Callable[[], bool]:
    """True once worker ``index`` is in the middle of a slow run it claimed (its third step began, its
    last has not)."""
    pid = fleet.pid(index)

    def check() -> bool:
        lines = [line for line in fleet.journal() if line["pid"] == pid and line["event"] == "start"]
        middle = {line["tid"] for line in lines if line["step"] == "slow-3"}
        last = {line["tid"] for line in lines if line["step"] == "slow-5"}
        return bool(middle - last)
    return check


async def start_queued(make_fleet: Callable[..., Fleet], queued: str = QUEUED, *, slots: int = 2,
                       workers: int = 3, worker_extra: tuple[str, ...] = (), **options: Any) -> Fleet:
    """``workers`` worker processes (``slots`` queued runs each at once) that start nothing themselves,
    and a producer (index 3) that queues ``queued`` and claims none."""
    fleet = make_fleet(lease_ttl=LEASE_TTL, **options)
    for i in range(workers):
        fleet.start(i, "", extra=("--engine-concurrency", str(slots), "--local-finish", *worker_extra))
    fleet.start(PRODUCER, queued, extra=("--queue", "--engine-concurrency", "0", "--local-finish"))
    await fleet.wait_ready()
    fleet.go()
    return fleet


def claimed_by(journal: list[dict[str, Any]], tid: str) -> set[int]:
    return {line["pid"] for line in journal if line["event"] == "start" and line["tid"] == tid}


async def test_queued_runs_drain_once_through_a_kill_a_stop_past_the_lease_and_a_postgresql_restart(
        make_fleet: Callable[..., Fleet], private_postgres: PrivatePostgres | None) -> None:
    fleet = await start_queued(make_fleet, scale=1.5)
    producer = fleet.pid(PRODUCER)
    await until(in_the_middle(fleet, 0), 30, "worker 0 in the middle of a queued run", fleet)
    fleet.kill(0)
    await until(in_the_middle(fleet, 1), 30, "worker 1 in the middle of a queued run", fleet)
    zombie = fleet.pid(1)
    stop = fleet.freeze(1)
    await asyncio.sleep(2 * LEASE_TTL + 0.5)  # the fault itself: stopped past its lease
    fleet.thaw(1)
    if private_postgres is not None:
        try:
            fleet.disruptions.append(await asyncio.to_thread(private_postgres.restart, "immediate", 1.0))
        finally:
            await asyncio.to_thread(private_postgres.ensure_running)
    report, seen, journal = await verify(fleet, timeout=90)
    print(report.format())
    assert_report(report, journal, fleet)
    queued = {line["tid"] for line in journal if line["event"] == "queued"}
    assert queued == {tid for _, tid in fleet.expected}, "the producer did not queue every run"
    # The producer (concurrency=0) claims nothing from the queue; it may recover a run a dead or
    # stopped worker had begun (recoveries are not bounded by concurrency), never begin one.
    starts = [line for line in journal if line["event"] == "start"]
    first = {}
    for line in starts:
        first.setdefault(line["tid"], line["pid"])
    assert producer not in first.values(), f"the producer (concurrency=0) claimed queued runs: " \
        f"{sorted(t for t, p in first.items() if p == producer)}"
    assert len(set(first.values())) >= 2, f"the queued runs were not spread over the workers: {first}"
    # Nothing left in the queue, nothing owned by the dead worker.
    killed = fleet.pid(0)
    for (_wf, tid, _run), lease in seen.leases.items():
        assert lease["state"] in ("done", "reverted", "failed"), (tid, lease)
        assert lease["lease_owner"] is None or f":{killed}:" not in lease["lease_owner"], (tid, lease)
    assert stop.t1 - stop.t0 > LEASE_TTL
    assert zombie in fleet.alive_pids(), f"worker 1 died after SIGCONT\n{fleet.output(1)}"
    await fleet.stop_all()


# -- priorities ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_with_one_slot_queued_runs_are_claimed_highest_priority_first(
        backend: str, tmp_path: Any, wf_name: str, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}" if backend == "sqlite" else request.getfixturevalue("scale_out_url")
    order: list[str] = []

    def note(value: Any, ctx: StepContext) -> str:
        order.append(value["id"])
        return value["id"]
    step = create_step("note", note)
    wf = create_workflow({"name": wf_name, "retention_time": 600}, lambda inp: step(inp))
    queued = [("low-1", -5), ("mid-1", 0), ("high-1", 10), ("mid-2", 0), ("high-2", 10), ("top", 99),
              ("low-2", -5)]
    async with WorkflowEngine(url, concurrency=0, poll_interval=0.1) as producer:
        for tid, priority in queued:
            await producer.run(wf, {"id": tid}, transaction_id=tid, queue=True, priority=priority)
        async with WorkflowEngine(url, concurrency=1, poll_interval=0.1):
            deadline = time.monotonic() + 30
            while len(order) < len(queued):
                assert time.monotonic() < deadline, f"claimed so far: {order}"
                await asyncio.sleep(0.02)
    assert order == ["top", "high-1", "high-2", "mid-1", "mid-2", "low-1", "low-2"]
