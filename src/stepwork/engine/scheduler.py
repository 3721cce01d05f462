"""Scheduled workflows: their timers, the next tick of a schedule, and the transaction id of a tick.

A schedule is a durable timer row (``schedule:{workflow}``) shared by every engine on the database:
whichever engine claims it moves it to the next tick first, then runs the workflow with a
transaction id made from the workflow and the tick, so a tick runs once.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import TYPE_CHECKING, Any

from stepwork.engine.log_fields import log_extra
from stepwork.engine.registry import get_workflow, registered_workflows
from stepwork.errors import StepworkError
from stepwork.storage.base import ListQuery, TimerRow
from stepwork.storage.query import normalize_filters, normalize_order

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine

__all__ = ["arm_schedules", "fire_schedule", "next_tick", "tick_iso", "tick_transaction_id", "timer_id"]

logger = logging.getLogger("stepwork.engine")


def next_tick(schedule: dict[str, Any], after: float) -> float:
    """The first tick strictly after ``after`` (epoch seconds). Interval ticks are multiples of the
    interval since the epoch, so every engine computes the same ones."""
    interval = schedule.get("interval")
    if interval is not None:
        return float((math.floor(after / interval) + 1) * float(interval))
    from croniter import croniter

    start = dt.datetime.fromtimestamp(after, dt.UTC)
    return float(croniter(schedule["cron"], start).get_next(float))


def tick_iso(tick: float) -> str:
    """ISO-8601 time of a tick (the ``scheduled_for`` input)."""
    return dt.datetime.fromtimestamp(tick, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def tick_transaction_id(workflow_id: str, tick: float) -> str:
    """The transaction id of one tick (no ``:``, which separates idempotency key parts)."""
    stamp = dt.datetime.fromtimestamp(tick, dt.UTC).strftime("%Y%m%dT%H%M%S")
    millis = round(tick * 1000) % 1000
    return f"schedule-{workflow_id}-{stamp}.{millis:03d}Z"


def timer_id(workflow_id: str) -> str:
    """The id of a workflow's schedule timer."""
    return f"schedule:{workflow_id}"


async def arm_schedules(engine: WorkflowEngine) -> None:
    """Make sure every registered scheduled workflow has its timer (once per workflow)."""
    for name, workflow in registered_workflows().items():
        schedule = workflow.options.schedule
        if schedule is None or name in engine.scheduled:
            continue
        due = next_tick(schedule, engine.clock.time())
        await engine.store.add_timer(TimerRow(timer_id(name), name, "", "", "schedule", due, None, {"count": 0}),
                                     replace=False)
        engine.scheduled.add(name)


async def fire_schedule(engine: WorkflowEngine, timer: TimerRow) -> None:
    """A schedule's tick: store the workflow's run for it (queued, for any engine to drive), then move
    its timer on to the next tick."""
    try:
        workflow = get_workflow(timer.workflow_id)
    except StepworkError:
        logger.warning("Tried to execute a scheduled workflow with ID %s that does not exist, removing it from "
                       "the scheduler.", timer.workflow_id, extra=log_extra(timer.workflow_id, None))
        await engine.store.delete_timer(timer.id)
        return
    schedule = workflow.options.schedule
    if schedule is None:
        await engine.store.delete_timer(timer.id)
        return
    tick = timer.due_at
    count = int(timer.data.get("count", 0))
    limit = schedule.get("number_of_executions")
    transaction_id = tick_transaction_id(workflow.name, tick)
    # Stored already: an engine queued this tick's run and stopped before it moved the timer on.
    already = await engine.store.latest(workflow.name, transaction_id) is not None
    run_it = not already
    if run_it and schedule.get("concurrency", "forbid") == "forbid":
        running = await engine.store.list_rows(ListQuery(normalize_filters(
            {"workflow_id": workflow.name, "state": ["not_started", "invoking", "waiting_to_compensate",
                                                     "compensating"]}), 0, 1, normalize_order(None), False))
        run_it = running[1] == 0
    if run_it or already:
        count += 1
    # The tick's run is stored (queued, under the tick's own transaction id) before the timer moves
    # on: an engine that dies between the two leaves a timer whose claim runs out, and the engine
    # that fires the tick again finds the run stored and only moves the timer (no tick lost, none
    # run twice). The move is conditional on this engine's claim: one paused past its claim finds
    # the tick fired elsewhere and neither runs it nor puts back the timer's older count and due.
    if run_it:
        await engine.run(workflow, {"scheduled_for": tick_iso(tick)}, transaction_id=transaction_id, queue=True)
    moved_to = None if limit is not None and count >= limit else TimerRow(
        timer.id, timer.workflow_id, "", "", "schedule", next_tick(schedule, max(tick, engine.clock.time())),
        None, {"count": count})
    if not await engine.store.move_timer(timer.id, engine.owner, tick, moved_to):
        logger.info("Tick %s of %s was fired by another engine meanwhile (this one's claim ran out); left to it.",
                    tick_iso(tick), workflow.name, extra=log_extra(workflow.name, None))
    elif not run_it:
        logger.info("Skipped tick %s of %s: its previous run is still running (concurrency \"forbid\").",
                    tick_iso(tick), workflow.name, extra=log_extra(workflow.name, None))
