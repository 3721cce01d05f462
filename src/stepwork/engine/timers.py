"""Durable timers: claim the due ones and fire each (retry waits, timeouts, awaiting retries,
background steps, schedules)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from stepwork.engine.log_fields import log_extra
from stepwork.engine.outcome import finish
from stepwork.engine.recovery import read_or_fail
from stepwork.engine.run import Run
from stepwork.engine.scheduler import fire_schedule
from stepwork.engine.stored_runs import FINISHED, checkpointer, load
from stepwork.storage.base import ExecutionKey, TimerRow

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine

__all__ = ["fire_due_timers"]

logger = logging.getLogger("stepwork.engine")


async def fire_due_timers(engine: WorkflowEngine, *, wait: bool = True) -> None:
    """Claim and fire the due timers of the workflows this process has."""
    # Only timers of workflows (and of executions of versions) this process has: another kind of
    # process must not take them.
    names, definitions = engine.definitions.runnable()
    timers = await engine.store.due_timers(engine.clock.time(), engine.owner, 100, engine.lease_ttl, names,
                                           definitions=definitions)

    async def fire_one(timer: TimerRow) -> None:
        try:
            await _fire(engine, timer)
        except Exception:
            logger.exception("Timer %s failed; it fires again later.", timer.id,
                             extra=log_extra(timer.workflow_id, timer.transaction_id or None, timer.run_id or None))
    # Side by side: a slow step woken by one timer must not hold up the others; the background
    # loop does not even wait for them (it comes round again at the next poll).
    if wait:
        await asyncio.gather(*[fire_one(t) for t in timers])
    else:
        for t in timers:
            engine.track(fire_one(t), f"stepwork-timer-{t.id}")


async def _fire(engine: WorkflowEngine, timer: TimerRow) -> None:
    if timer.kind == "schedule":
        await fire_schedule(engine, timer)
        return
    if timer.kind == "background":
        live = next((t for t in engine.background_timers.values() if t.id == timer.id), None)
        if live is not None:  # the step still runs here: push its timer on
            live.due_at = engine.clock.time() + 2 * engine.lease_ttl
            await engine.store.add_timer(live)
            return
    key = ExecutionKey(timer.workflow_id, timer.transaction_id, timer.run_id)

    async def take() -> Run | None:
        row = await engine.store.get(key)
        if row is None or row.state in FINISHED:
            await engine.store.delete_timer(timer.id)
            return None
        now = engine.clock.time()
        version = await engine.store.acquire(key, engine.owner, now + engine.lease_ttl, now)
        if version is None:
            return None  # another process drives it; the claim expires and the timer fires again
        return await load(engine, engine.definitions.compiled_for(row), row, version)

    async with engine.locked(timer.workflow_id, timer.transaction_id):
        run = await read_or_fail(engine, key, take)  # (a row nobody can read is failed, its timers removed)
        if run is None:
            return
        cp = checkpointer(run)
        cp.consumed.append(timer.id)  # removed by the run's next write, with the timer's effect
        run.reason = timer.kind
        run.reason_step = timer.step_index
        # Step timers are per attempt ("...:{step}:{attempt}"): one of an attempt the step has left is void.
        attempt = timer.id.rpartition(":")[2]
        run.reason_attempt = int(attempt) if attempt.isdigit() else None
        await engine.drive(run)
        if cp.consumed:  # nothing was written (the timer had no effect left): remove it now
            await engine.store.delete_timer(timer.id)
        await finish(run, throw_on_error=False, result_from=None)
