"""Queued runs: ``engine.run(..., queue=True)`` stores a run that any engine sharing the database
drives; each engine's claim loop takes as many as it has free slots (``concurrency``), woken by a
run queued in this process, by the store's notifications (PostgreSQL ``LISTEN``), or by its
``poll_interval`` (the fallback that never loses work).

A claimed run leaves the queue with this engine's lease, so recovery covers a claimer that dies; an
engine that stops puts back in the queue what it had to abandon half-way (see ``WorkflowEngine.stop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from stepwork.engine.compiled import CompiledWorkflow
from stepwork.engine.log_fields import log_extra
from stepwork.engine.outcome import finish
from stepwork.engine.recovery import read_or_fail
from stepwork.engine.registry import registered_workflows
from stepwork.engine.results import WorkflowResult
from stepwork.engine.run import Run
from stepwork.engine.stored_runs import FINISHED, checkpointer, create, load
from stepwork.errors import StepworkError
from stepwork.storage.base import Claimed

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine

__all__ = ["QueueWorker", "enqueue", "queued_options"]

logger = logging.getLogger("stepwork.engine")
_INVALID = StepworkError.Types.INVALID_DATA


def queued_options(events: Any, result_from: str | None, priority: Any) -> int:
    """Check what a queued run call may be given; its priority."""
    if events:
        raise StepworkError(_INVALID, "A queued run (queue=True) takes no per-run events: the process that claims "
                                      "it drives it. Subscribe with engine.subscribe(workflow_id, ...) instead.")
    if result_from is not None:
        raise StepworkError(_INVALID, "A queued run (queue=True) returns before it has a result, so it takes no "
                                      "result_from; read the result from its execution once it has finished.")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise StepworkError(_INVALID, f"priority must be an integer (higher is claimed first), got {priority!r}.")
    return priority


async def enqueue(engine: WorkflowEngine, compiled: CompiledWorkflow, payload: Any, transaction_id: str,
                  ctx: dict[str, Any], event_group_id: str, listeners: Any, priority: int) -> WorkflowResult[Any]:
    """Store a new queued execution (``not_started``, no lease) and wake the claim loops."""
    run = await create(engine, compiled, payload, transaction_id, ctx, event_group_id, listeners)
    cp = checkpointer(run)
    row = cp.pending_row
    assert row is not None
    cp.pending_row = None
    row.lease_owner = row.lease_expires_at = None
    row.progress = cp.progress()  # the run context and event group, for whichever engine claims it
    await engine.store.enqueue(row, priority)
    engine.queue.wake.set()  # this engine may claim it too; others hear of it from the store (or poll)
    return WorkflowResult(None, run.txn)


async def queued_result(engine: WorkflowEngine, compiled: CompiledWorkflow, row: Any) -> WorkflowResult[Any]:
    """The acknowledgement of an unfinished execution asked to be queued again: it is left as it is."""
    run = await load(engine, compiled, row, row.version)
    return WorkflowResult(None, run.txn)


class QueueWorker:
    """One engine's claim loop and the queued runs it drives (at most ``concurrency`` at once)."""

    def __init__(self, engine: WorkflowEngine, concurrency: int) -> None:
        self.engine = engine
        self.concurrency = concurrency
        self.wake = asyncio.Event()
        self.running: set[asyncio.Task[None]] = set()
        self._claiming = asyncio.Lock()  # the loop and fire_due() must not both fill the same free slots
        self.claimed = 0  # how many runs this engine has claimed since it started

    def reset(self) -> None:
        """Fresh primitives for a start (an engine may be started again, on another event loop)."""
        self.wake = asyncio.Event()
        self._claiming = asyncio.Lock()

    async def loop(self) -> None:
        """Claim while there are free slots; then wait for a wake-up or ``poll_interval``."""
        engine = self.engine
        while True:
            self.wake.clear()
            try:
                await self.claim()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Claiming queued runs failed; trying again in %ss.", engine.poll_interval)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(engine.poll_interval):  # (no inner task, unlike wait_for)
                    await self.wake.wait()

    async def claim(self, *, wait: bool = False) -> int:
        """Claim queued runs of the workflows this process has, up to the free slots, and drive each
        in a task (``wait``: until they stop); how many were claimed."""
        engine = self.engine
        async with self._claiming:
            free = self.concurrency - len(self.running)
            # A process without the workflow, or without the version a run was queued on, leaves it to others.
            names, definitions = engine.definitions.runnable()
            if free <= 0 or not names:
                return 0
            limits = {name: wf.options.max_concurrency for name, wf in registered_workflows().items()
                      if getattr(wf.options, "max_concurrency", None) is not None}
            now = engine.clock.time()
            claimed = await engine.store.claim_queued(engine.owner, now + engine.lease_ttl, free, names,
                                                      definitions=definitions, limits=limits)
            tasks = [self._start(c) for c in claimed]
            self.claimed += len(claimed)
        if wait and tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        return len(claimed)

    def _start(self, claimed: Claimed) -> asyncio.Task[None]:
        task = asyncio.create_task(self._drive(claimed), name=f"stepwork-queued-{claimed.key.transaction_id}")
        self.running.add(task)
        self.engine.background.add(task)  # cancelled by stop() if it outlives the grace period
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        self.engine.background.discard(task)
        self.wake.set()  # a slot is free: claim again now rather than at the next poll

    async def _drive(self, claimed: Claimed) -> None:
        engine = self.engine
        key = claimed.key

        async def read() -> Run | None:
            # (the row read with the claim, unless this process had the run's lock meanwhile: a
            # cancel here may have changed it since)
            row = (claimed.row if not contended else None) or await engine.store.get(key)
            if row is None or row.state in FINISHED:
                return None
            # (read with the claim, or after it took the lease: fresh)
            run = await load(engine, engine.definitions.compiled_for(row), row, claimed.version, fresh=True)
            # Not started: it begins. Started (an engine stopped in its middle and put it back):
            # it goes on as a recovered run, the interrupted step invoked again.
            run.reason = None if row.state == "not_started" else "recovery"
            return run
        contended = engine.busy(key.workflow_id, key.transaction_id)
        try:
            async with engine.locked(key.workflow_id, key.transaction_id):
                run = await read_or_fail(engine, key, read)
                if run is None:
                    return
                await engine.drive(run)
                await finish(run, throw_on_error=False, result_from=None)
        except Exception:
            logger.exception("Queued execution %s of %s failed to run; an engine takes it over once its lease "
                             "expires.", key.transaction_id, key.workflow_id,
                             extra=log_extra(key.workflow_id, key.transaction_id, key.run_id))

    async def settle(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the queued runs being driven here to stop."""
        if self.running and grace > 0:
            await asyncio.wait(list(self.running), timeout=grace)
