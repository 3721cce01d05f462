"""Scheduled workflows: ticks from durable timers, one run per tick, a cap, concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stepwork import StepworkError, create_step, create_workflow
from stepwork.engine.engine import WorkflowEngine
from stepwork.engine.scheduler import next_tick, tick_transaction_id


def test_interval_ticks_are_multiples_of_the_interval() -> None:
    """Every engine computes the same ticks: multiples of the interval since the epoch."""
    assert next_tick({"interval": 60}, 119.0) == 120.0
    assert next_tick({"interval": 60}, 120.0) == 180.0


def test_cron_ticks_follow_the_expression() -> None:
    """A daily cron ticks at the next midnight UTC."""
    day = 86_400
    assert next_tick({"cron": "0 0 * * *"}, 10 * day + 5) == 11 * day


@pytest.mark.parametrize("schedule", ["not a cron", {"cron": "* * * * *", "interval": 5}, {"every": 5},
                                      {"interval": 0}, {"interval": 5, "number_of_executions": 0},
                                      {"interval": 5, "concurrency": "sometimes"}])
def test_bad_schedules_are_rejected_at_definition(wf_name: str, schedule: Any) -> None:
    """A schedule that cannot tick raises invalid_data when the workflow is defined."""
    s = create_step("s", lambda v: v)
    with pytest.raises(StepworkError) as err:
        create_workflow({"name": wf_name, "schedule": schedule}, lambda inp: s(inp))
    assert err.value.type == "invalid_data"


async def test_a_daily_schedule_runs_once_per_tick_up_to_its_cap(engine: WorkflowEngine, wf_name: str,
                                                                   clock: Any) -> None:
    """A once-a-day schedule runs at each midnight with scheduled_for, once per tick, and stops
    after number_of_executions runs; whole days pass in well under a second."""
    seen: list[str] = []
    s = create_step("s", lambda v: seen.append(v["scheduled_for"]))
    create_workflow({"name": wf_name, "retention_time": 86_400 * 10,
                     "schedule": {"cron": "0 0 * * *", "number_of_executions": 2}}, lambda inp: s(inp))
    await engine._tick()  # the engine notices the new scheduled workflow
    for _ in range(3):
        clock.advance(86_400)
        await engine._tick()
        await engine._tick()  # firing twice in a tick must not run it twice
    assert len(seen) == 2
    assert all(t.endswith("T00:00:00.000Z") for t in seen)
    rows = await engine.list_workflow_executions({"workflow_id": wf_name})
    assert sorted(r.transaction_id for r in rows) == sorted(
        tick_transaction_id(wf_name, next_tick({"cron": "0 0 * * *"}, clock.time() - 86_400 * k)) for k in (3, 2))


async def test_forbid_skips_a_tick_while_the_previous_run_waits(engine: WorkflowEngine, wf_name: str,
                                                                clock: Any) -> None:
    """concurrency "forbid" (the default): a tick is skipped while the previous run is unfinished."""
    wait = create_step({"name": "wait", "async": True}, lambda v: None)
    create_workflow({"name": wf_name, "retention_time": 600, "schedule": {"interval": 60}}, lambda inp: wait(inp))
    await engine._tick()
    clock.advance(60)
    await engine._tick()
    clock.advance(60)
    await engine._tick()
    rows = await engine.list_workflow_executions({"workflow_id": wf_name})
    assert len(rows) == 1 and rows[0].state == "invoking"


async def test_two_engines_share_one_schedule(database_url: str, wf_name: str, clock: Any, tmp_path: Any) -> None:
    """Two engines on one database: each tick runs once, whichever engine fires it."""
    if database_url == "sqlite://":
        database_url = f"sqlite:///{tmp_path / 'schedule.db'}"
    seen: list[str] = []
    s = create_step("s", lambda v: seen.append(v["scheduled_for"]))
    create_workflow({"name": wf_name, "retention_time": 600, "schedule": {"interval": 30}}, lambda inp: s(inp))
    async with WorkflowEngine(database_url, clock=clock, poll_interval=60) as a, \
            WorkflowEngine(database_url, clock=clock, poll_interval=60) as b:
        for n in range(1, 5):
            clock.advance(30)
            await a._tick()
            await b._tick()
            # The tick's run is queued: either engine's claim loop may be driving it still, and a tick
            # that comes while its previous run runs is skipped (concurrency "forbid").
            for _ in range(500):
                rows = await a.list_workflow_executions({"workflow_id": wf_name})
                if len(rows) == n and all(r.state == "done" for r in rows):
                    break
                await asyncio.sleep(0.01)
    assert len(seen) == 4
    assert len(set(seen)) == 4
