"""Recovery and leases: executions whose owner stopped are taken over; this engine's leases are
renewed for the runs it is driving, and only those."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from stepwork.engine.log_fields import log_extra
from stepwork.engine.outcome import finish
from stepwork.engine.stored_runs import FINISHED, load
from stepwork.storage.base import ExecutionKey

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine

__all__ = ["recover_execution", "recover_orphans", "renew_leases"]

logger = logging.getLogger("stepwork.engine")


async def recover_orphans(engine: WorkflowEngine, *, wait: bool = True) -> None:
    """Take over the unfinished executions whose owner's lease expired."""
    async def recover_one(key: ExecutionKey) -> None:
        try:
            await recover_execution(engine, key)
        except Exception:
            logger.exception("Recovery of %s/%s failed; it is tried again later.", key.workflow_id,
                             key.transaction_id, extra=log_extra(key.workflow_id, key.transaction_id, key.run_id))
    stalled = getattr(engine.store, "stalled_since", None)
    if stalled is not None and stalled(engine.lease_ttl):
        # The database was locked for a while (a frozen process held SQLite's write lock): no
        # process could renew its leases meanwhile, so an expired lease says nothing about its
        # owner. Owners get one lease period to renew before their executions count as orphans.
        return
    # Only executions of workflows this process has: the processes that have them take the others.
    known, definitions = engine.definitions.runnable()
    keys = await engine.store.orphans(engine.clock.time(), 100, known, definitions=definitions)
    await _report_foreign_orphans(engine, known, definitions)
    if wait:
        await asyncio.gather(*[recover_one(k) for k in keys])
    else:
        for k in keys:
            engine.track(recover_one(k), f"stepwork-recover-{k.transaction_id}")


async def _report_foreign_orphans(engine: WorkflowEngine, known: set[str], definitions: set[str]) -> None:
    """Say (once per execution) which orphans this process leaves alone because it lacks their
    workflow: if no process has it, they wait for ever, and the log is where a user finds out."""
    now = engine.clock.time()
    if now < engine.foreign_check_at:
        return
    engine.foreign_check_at = now + max(engine.lease_ttl, 60.0)
    for key in await engine.store.orphans(now, 20):
        if key.workflow_id in known or key in engine.foreign_reported:
            continue
        engine.foreign_reported.add(key)
        logger.warning('Execution %s of workflow "%s" has no live owner, and this process does not define that '
                       "workflow, so it leaves it to a process that does. Import the module that defines the "
                       "workflow in every process that runs, completes or recovers its executions.",
                       key.transaction_id, key.workflow_id,
                       extra=log_extra(key.workflow_id, key.transaction_id, key.run_id))
    for key in await engine.store.orphans(now, 20, known):
        if key in engine.foreign_reported:
            continue
        try:
            row = await engine.store.get(key)
        except Exception:  # an unreadable row: its recovery reports it
            continue
        if row is None or row.definition_hash is None or row.definition_hash in definitions:
            continue
        engine.foreign_reported.add(key)
        logger.warning('Execution %s of workflow "%s" has no live owner, and it runs on a version of that workflow '
                       "this process does not have (it started on another definition), so it leaves it to a "
                       "process that has it. If none does, it is stale: keep the old definition registered "
                       "beside the new one (option version=...), or cancel it.", key.transaction_id,
                       key.workflow_id, extra=log_extra(key.workflow_id, key.transaction_id, key.run_id))


async def recover_execution(engine: WorkflowEngine, key: ExecutionKey) -> None:
    """Take over and drive on one unfinished execution whose owner stopped (or this engine's own lease)."""
    if engine.busy(key.workflow_id, key.transaction_id):
        return  # this process is on it already (an earlier poll's recovery still runs)
    async with engine.locked(key.workflow_id, key.transaction_id):
        row = await engine.store.get(key)
        if row is None or row.state in FINISHED:
            return
        now = engine.clock.time()
        version = await engine.store.acquire(key, engine.owner, now + engine.lease_ttl, now)
        if version is None:
            return
        logger.info("Recovering execution %s of %s (its owner %s stopped).", row.transaction_id,
                    row.workflow_id, row.lease_owner, extra=log_extra(key.workflow_id, key.transaction_id, key.run_id))
        run = await load(engine, engine.definitions.compiled_for(row), row, version)
        run.reason = "recovery"
        await engine.drive(run)
        await finish(run, throw_on_error=False, result_from=None)


async def renew_leases(engine: WorkflowEngine) -> None:
    """Extend the leases of the runs this engine is driving, and push on its background steps' timers."""
    now = engine.clock.time()
    await engine.store.renew(engine.owner, now + engine.lease_ttl, list(engine.driving))
    for timer in list(engine.background_timers.values()):  # background steps still running here
        timer.due_at = now + 2 * engine.lease_ttl
        await engine.store.add_timer(timer)
    fold = getattr(engine.store, "fold_wal", None)  # SQLite: keep the write-ahead log short
    if fold is not None:
        await fold()
