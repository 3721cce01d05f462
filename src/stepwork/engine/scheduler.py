"""Scheduled workflows: the next tick of a schedule, and the transaction id of a tick.

A schedule is a durable timer row (``schedule:{workflow}``) shared by every engine on the database:
whichever engine claims it moves it to the next tick first, then runs the workflow with a
transaction id made from the workflow and the tick, so a tick runs once.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

__all__ = ["next_tick", "tick_iso", "tick_transaction_id", "timer_id"]


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
