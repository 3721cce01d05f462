"""Recovery and leases: executions whose owner stopped are taken over; this engine's leases are
renewed for the runs it is driving, and only those."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from stepwork.engine.log_fields import log_extra
from stepwork.engine.outcome import finish
from stepwork.engine.run import Run
from stepwork.engine.stored_runs import FINISHED, load
from stepwork.errors import StepworkError
from stepwork.storage.base import ExecutionKey

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine

__all__ = ["read_or_fail", "recover_execution", "recover_orphans", "renew_leases", "unreadable"]

logger = logging.getLogger("stepwork.engine")

# What reading a corrupt row raises: a column that is not JSON (or not text), or JSON nested too deep.
# Not a field missing or a state unknown: a row written by a newer stepwork (a rolling upgrade) reads
# so to an older one, and failing it would end, uncompensated, a run the newer processes can read.
_CONTENT_ERRORS = (json.JSONDecodeError, UnicodeDecodeError, RecursionError)


def unreadable(exc: BaseException) -> bool:
    """Whether ``exc``, raised while an execution's row was read or loaded into a run, says the row
    cannot be read: one of its documents is not JSON. stepwork's own errors never do:
    ``database_error`` is transient (the read is tried again), ``not_found``/``conflict`` say the
    row went, or runs on a workflow or version this process lacks (the processes that have it take
    it)."""
    return isinstance(exc, _CONTENT_ERRORS) and not isinstance(exc, StepworkError)


async def read_or_fail(engine: WorkflowEngine, key: ExecutionKey,
                       read: Callable[[], Awaitable[Run | None]]) -> Run | None:
    """``read()`` (the read and load of a stored execution, no step code), or ``None`` if the row cannot
    be read: then the execution is failed in the store, without being read, and logged once, as no
    engine would ever read it either (each retry would fill the logs and hold a place among the
    orphans a poll takes). Other errors propagate (transient ones: the lease expires, recovery retries)."""
    try:
        return await read()
    except Exception as exc:
        if not unreadable(exc):
            raise
        reason = f"{type(exc).__name__}: {exc}"
        if await engine.store.fail_unreadable(key, reason, engine.clock.time()):
            # (False: finished meanwhile, or another engine failed it first and said so.)
            logger.error(
                'Execution %s of workflow "%s" (run %s) cannot be read from the database: its stored row is '
                "corrupt (%s). It is now failed, so no engine tries it again; its columns are left as they "
                "were, and reading its records fails until the row is repaired. Repair its execution, context "
                "and progress columns (or its workflow_execution_step rows), or delete it: its "
                "workflow_execution row and its workflow_execution_step rows.",
                key.transaction_id, key.workflow_id, key.run_id, reason, exc_info=exc,
                extra=log_extra(key.workflow_id, key.transaction_id, key.run_id))
        return None


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
    async def take_over() -> Run | None:
        row = await engine.store.get(key)
        if row is None or row.state in FINISHED:
            return None
        now = engine.clock.time()
        version = await engine.store.acquire(key, engine.owner, now + engine.lease_ttl, now)
        if version is None:
            return None
        logger.info("Recovering execution %s of %s (its owner %s stopped).", row.transaction_id,
                    row.workflow_id, row.lease_owner, extra=log_extra(key.workflow_id, key.transaction_id, key.run_id))
        return await load(engine, engine.definitions.compiled_for(row), row, version)

    async with engine.locked(key.workflow_id, key.transaction_id):
        run = await read_or_fail(engine, key, take_over)
        if run is None:
            return
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
