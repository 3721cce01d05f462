"""``WorkflowEngine``: the facade. It owns the store, the clock, the background loops and the
per-transaction locks; each of its jobs lives in a module of its own (starting runs, completions,
cancelling, listing, timers, recovery)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any

from stepwork.container import Container, Modules
from stepwork.engine import background, cancel, completion, driving, heartbeat, listing, recovery, starting
from stepwork.engine.compiled import StepHandler
from stepwork.engine.context import StepContext
from stepwork.engine.definitions import Definitions
from stepwork.engine.ids import new_ulid
from stepwork.engine.nested import StoredNested
from stepwork.engine.queue import QueueWorker
from stepwork.engine.records import WorkflowExecution
from stepwork.engine.registry import Runnable
from stepwork.engine.results import TransactionInfo, WorkflowResult
from stepwork.engine.run import Run
from stepwork.engine.scheduler import arm_schedules
from stepwork.engine.setup import DEFAULT_SQLITE_PATH, Clock, SystemClock, open_store, positive
from stepwork.engine.shared_events import SharedEvents, listen
from stepwork.engine.stored_runs import FINISHED, load
from stepwork.engine.subscriptions import Subscriber, Subscriptions
from stepwork.engine.timers import fire_due_timers
from stepwork.errors import StepworkError
from stepwork.query import Query, attach_engine_query, detach_engine_query
from stepwork.storage.base import ExecutionKey, ExecutionStore, TimerRow

__all__ = ["DEFAULT_SQLITE_PATH", "Clock", "SystemClock", "WorkflowEngine", "open_store"]

logger = logging.getLogger("stepwork.engine")


class WorkflowEngine:
    """Runs workflows and keeps their executions.

    ``WorkflowEngine(database_url=None, *, lease_ttl=30.0, poll_interval=1.0, cleanup_interval=1800.0,
    concurrency=10)``; ``async with engine:`` starts it (migrations, timer loop, recovery, cleanup,
    the claim loop of queued runs) and stops it. ``concurrency``: how many queued runs it drives at
    once (0: it queues runs but claims none). The engine registers itself in ``engine.container`` as
    ``Modules.WORKFLOW_ENGINE``.
    """

    def __init__(self, database_url: str | None = None, *, lease_ttl: float = 30.0, poll_interval: float = 1.0,
                 cleanup_interval: float = 1800.0, container: Container | None = None,
                 clock: Clock | None = None, concurrency: int = 10) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 0:
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f"concurrency must be a whole number of runs >= 0 (0: queue runs, never claim "
                                f"them), got {concurrency!r}.")
        self.queue = QueueWorker(self, concurrency)
        self.lease_ttl = positive("lease_ttl", lease_ttl)
        self.poll_interval = positive("poll_interval", poll_interval)
        self.cleanup_interval = positive("cleanup_interval", cleanup_interval)
        self.database_url = database_url
        self.store: ExecutionStore = open_store(database_url)
        self.clock: Clock = clock or SystemClock()
        attach = getattr(self.clock, "attach", None)
        if attach is not None:  # a test clock fires this engine's timers when it is advanced
            attach(self)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{new_ulid()}"
        self.container = container if container is not None else Container()
        self.container.register(Modules.WORKFLOW_ENGINE, self)
        self.subscriptions = Subscriptions()
        # Events of runs driven elsewhere, for the subscribers here (and the other way round).
        self.shared: SharedEvents | None = SharedEvents(self) if getattr(self.store, "notifies", False) else None
        self.definitions = Definitions(self.store)
        self.nested = StoredNested(self)
        self.driving: dict[ExecutionKey, int] = {}  # the runs driven here now (their leases are renewed)
        self.background: set[asyncio.Task[None]] = set()
        self.background_timers: dict[asyncio.Task[None], TimerRow] = {}
        self.scheduled: set[str] = set()
        self.foreign_reported: set[ExecutionKey] = set()  # orphans of workflows this process lacks, logged
        self.foreign_check_at = 0.0
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._after_unlock: dict[tuple[str, str], list[Callable[[], Coroutine[Any, Any, None]]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[None]] = set()  # timer fires and recoveries of the background loop
        self._started = False
        self.started_at: float | None = None
        self.beat_generation = -1  # the registry's generation at this engine's last heartbeat
        self._query: Query | None = None  # the query over this database registered at start, if any

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store (applying migrations), resume what needs it, start the background loops."""
        if self._started:
            return
        await self.store.open()
        self._started = True
        try:
            self.started_at = self.clock.time()
            await heartbeat.beat(self)  # before it claims: the versions it has count as live from now
            self._query = attach_engine_query(self) or self._query  # Modules.QUERY, unless one is registered
            await arm_schedules(self)
            await recovery.recover_orphans(self)
            await fire_due_timers(self)
        except BaseException:  # a start that fails leaves nothing open
            self._started = False
            detach_engine_query(self._query)
            with contextlib.suppress(Exception):
                await self.store.close()
            raise
        self.queue.reset()
        self._tasks = [asyncio.create_task(self._loop(self._poll, self.poll_interval), name="stepwork-timers"),
                       asyncio.create_task(self._loop(self._renew, self.lease_ttl / 3), name="stepwork-leases"),
                       asyncio.create_task(self._loop(self.cleanup_expired_executions, self.cleanup_interval,
                                                      first=False), name="stepwork-cleanup"),
                       asyncio.create_task(self.queue.loop(), name="stepwork-queue"),
                       asyncio.create_task(listen(self), name="stepwork-listen")]

    async def stop(self, *, grace: float = 0.0) -> None:
        """Stop taking work (queued runs, timers, recoveries); wait up to ``grace`` seconds for the runs
        this engine's loops are driving; stop the rest, put those back in the queue (another engine
        claims them at once, instead of after their lease expires), and close the store."""
        if not self._started:
            return
        renewal = self._tasks[1]  # leases are renewed while the runs in flight finish
        for task in self._tasks:
            if task is not renewal:
                task.cancel()
        if grace > 0:
            await self.queue.settle(grace)
            if self._inflight:  # timers fired and recoveries
                await asyncio.wait(list(self._inflight), timeout=grace)
        renewal.cancel()
        for task in list(self.background):
            task.cancel()
        for task in [*self._tasks, *self.background]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._started = False
        if self.shared is not None:
            self.subscriptions.remote = None
            await self.shared.stop()
        try:
            await self.store.requeue_abandoned(self.owner, self.clock.time())
        except Exception:  # they are taken over when their leases expire instead
            logger.exception("Putting the runs this engine stopped back in the queue failed.")
        with contextlib.suppress(Exception):  # (if it cannot be said, the row goes silent, then "gone")
            await heartbeat.stopped(self)
        detach_engine_query(self._query)
        await self.store.close()

    async def __aenter__(self) -> WorkflowEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def started(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._started

    def _require_started(self) -> None:
        if not self._started:
            raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                                "The workflow engine is not started: use `async with engine:` or "
                                "`await engine.start()`.")

    async def _loop(self, fn: Callable[[], Any], interval: float, *, first: bool = True) -> None:
        if not first:
            await asyncio.sleep(interval)
        while True:
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("stepwork background task %s failed; it runs again in %ss.",
                                 getattr(fn, "__name__", fn), interval)
            await asyncio.sleep(interval)

    async def fire_due(self) -> None:
        """Fire what is due now: schedules, timers, and the recovery of executions whose owner's lease
        expired (what the background loop does every ``poll_interval``)."""
        self._require_started()
        await self._tick()

    async def _tick(self, *, wait: bool = True) -> None:
        await heartbeat.refresh(self)
        await arm_schedules(self)
        await fire_due_timers(self, wait=wait)
        await recovery.recover_orphans(self, wait=wait)
        if wait:
            await self.queue.claim(wait=True)  # (the claim loop takes them otherwise, woken or polling)
        if wait and self._inflight:
            # What the background loop woke just before (it may have claimed the timers first).
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def _poll(self) -> None:
        """The background loop's turn: fire what is due without waiting for the runs it wakes."""
        await self._tick(wait=False)

    async def _renew(self) -> None:
        await recovery.renew_leases(self)
        await heartbeat.beat(self)
        if self.shared is not None:
            await self.shared.keepalive()

    def track(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` as a task of the background loop's (``fire_due`` waits for it)."""
        task = asyncio.create_task(work, name=name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    # -- one transaction at a time ----------------------------------------------------------------

    def busy(self, workflow_id: str, transaction_id: str) -> bool:
        """True while a call of this process holds the transaction's lock."""
        lock = self._locks.get((workflow_id, transaction_id))
        return lock is not None and lock.locked()

    @contextlib.asynccontextmanager
    async def locked(self, workflow_id: str, transaction_id: str) -> AsyncIterator[None]:
        """Hold the transaction's lock in this process (the lease orders processes)."""
        key = (workflow_id, transaction_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and not lock._waiters:
                self._locks.pop(key, None)
            # Also when the body raised (a failed run raising to its caller): the work is owed.
            for work in self._after_unlock.pop(key, []):
                await work()

    async def after_unlock(self, workflow_id: str, transaction_id: str,
                           work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``work`` once the transaction's lock is let go (now, if nobody here holds it)."""
        key = (workflow_id, transaction_id)
        if self.busy(workflow_id, transaction_id):
            self._after_unlock.setdefault(key, []).append(work)
        else:
            await work()

    async def drive(self, run: Run) -> None:
        """Drive a stored run with this engine's lease (see ``engine.driving``)."""
        await driving.drive(self, run)

    async def start_background(self, run: Run, handler: StepHandler, value: Any, ctx: StepContext) -> None:
        """Run a ``background_execution`` step's invoke in a task; its outcome completes the step."""
        await background.start_background(self, run, handler, value, ctx)

    # -- running ----------------------------------------------------------------------------------

    async def run(self, workflow_or_id: Runnable | str, input: Any = None, *,
                  transaction_id: str | None = None, context: Mapping[str, Any] | None = None,
                  throw_on_error: bool = True, events: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None,
                  result_from: str | None = None, container: Container | None = None, queue: bool = False,
                  priority: int = 0, version: str | None = None) -> WorkflowResult[Any]:
        """Run a workflow (an object or a registered name) through this engine.

        A stored workflow (``store``, async steps, timeouts, retry intervals, ``idempotent``,
        ``retention_time``…) is checkpointed at every step; running again with the id of an
        unfinished execution resumes it; with a finished one, an ``idempotent`` workflow returns the
        stored result, otherwise a new run starts.

        ``queue=True`` stores the run (whatever ``store`` says) and returns at once, unfinished; any
        engine sharing the database that defines the workflow claims and drives it, ``priority``
        (higher first) then oldest first. Given the id of an unfinished execution, it leaves it as it is.

        ``version`` starts that version of the workflow instead of the one defined last; an
        unfinished execution always goes on on the version it started with.
        """
        self._require_started()
        return await starting.run(self, workflow_or_id, input, transaction_id=transaction_id, context=context,
                                  throw_on_error=throw_on_error, events=events, result_from=result_from,
                                  container=container, queue=queue, priority=priority, version=version)

    # -- completions from outside -----------------------------------------------------------------

    async def set_step_success(self, idempotency_key: str | Mapping[str, Any], step_response: Any = None, *,
                               throw_on_error: bool = True) -> WorkflowResult[Any]:
        """Complete a waiting async step (or ``compensate_async`` compensation) with ``step_response``
        (a ``StepResponse`` keeps its compensation input) and continue the workflow in this call."""
        self._require_started()
        return await completion.complete(self, idempotency_key, completion.succeed(step_response),
                                         throw_on_error=throw_on_error)

    async def set_step_failure(self, idempotency_key: str | Mapping[str, Any], error: Any = None, *,
                               force_permanent_failure: bool = False,
                               throw_on_error: bool = True) -> WorkflowResult[Any]:
        """Fail a waiting async step (or compensation): its retry policy applies unless
        ``force_permanent_failure``; the workflow continues (or compensates) in this call."""
        self._require_started()
        return await completion.complete(self, idempotency_key, completion.fail(error, force_permanent_failure),
                                         throw_on_error=throw_on_error)

    async def retry_step(self, idempotency_key: str | Mapping[str, Any]) -> WorkflowResult[Any]:
        """Invoke again a step that waits for its response (e.g. a stuck async step)."""
        self._require_started()
        return await completion.complete(self, idempotency_key, completion.retry, throw_on_error=False)

    # -- cancel -----------------------------------------------------------------------------------

    async def cancel(self, workflow_id: str, transaction_id: str, *,
                     throw_on_error: bool = True) -> WorkflowResult[Any] | None:
        """Compensate every completed step of an ``invoking`` or ``done`` stored execution → ``reverted``.

        A waiting async step is failed at once. ``failed`` or compensating executions raise
        ``not_allowed``; an unknown one raises ``not_found`` (``None`` with ``throw_on_error=False``).
        """
        self._require_started()
        return await cancel.cancel(self, workflow_id, transaction_id, throw_on_error=throw_on_error)

    async def get_running_transaction(self, workflow_id: str, transaction_id: str) -> TransactionInfo | None:
        """The state of an unfinished stored execution, or ``None``."""
        self._require_started()
        row = await self.store.latest(workflow_id, transaction_id)
        if row is None or row.state in FINISHED:
            return None
        run = await load(self, self.definitions.compiled_for(row), row, row.version)
        return TransactionInfo(run.txn)

    # -- subscriptions ----------------------------------------------------------------------------

    async def subscribe(self, workflow_id: str, subscriber: Subscriber, *, transaction_id: str | None = None,
                        subscriber_id: str | None = None) -> None:
        """Receive the events of ``workflow_id`` (of one transaction if given) as dicts; on
        PostgreSQL, also those of runs other processes drive (as JSON values)."""
        self.subscriptions.subscribe(workflow_id, subscriber, transaction_id, subscriber_id)
        if self.shared is not None and self._started:
            try:
                await self.shared.sync()
            except BaseException:  # cancelled while it waited (a client that went away): not subscribed
                self.subscriptions.unsubscribe(workflow_id, subscriber_id or subscriber, transaction_id)
                raise

    async def unsubscribe(self, workflow_id: str, subscriber_or_id: Any, *, transaction_id: str | None = None) -> None:
        """Stop a subscription (by function or ``subscriber_id``)."""
        self.subscriptions.unsubscribe(workflow_id, subscriber_or_id, transaction_id)
        if self.shared is not None and self._started:
            await self.shared.sync()

    # -- reading ----------------------------------------------------------------------------------

    async def list_and_count_workflow_executions(self, filters: Mapping[str, Any] | None = None, *, skip: int = 0,
                                                 take: int | None = None, order: Any = None,
                                                 records: bool = True) -> tuple[list[WorkflowExecution], int]:
        """Stored executions matching ``filters``, and their total count. ``records=False`` leaves
        each execution's ``execution`` and ``context`` out (``None``): cheaper, for listings."""
        self._require_started()
        return await listing.list_and_count(self, filters, skip, take, order, records=records)

    async def list_workflow_executions(self, filters: Mapping[str, Any] | None = None, *, skip: int = 0,
                                       take: int | None = None, order: Any = None) -> list[WorkflowExecution]:
        """Stored executions matching ``filters``."""
        return (await self.list_and_count_workflow_executions(filters, skip=skip, take=take, order=order))[0]

    async def retrieve_workflow_execution(self, id: str | Mapping[str, str]) -> WorkflowExecution:
        """One stored execution by its ``wf_exec_…`` id (or ``{workflow_id, transaction_id, run_id}``)."""
        self._require_started()
        return await listing.retrieve(self, id)

    async def cleanup_expired_executions(self) -> int:
        """Delete finished executions whose retention ran out; return how many. (Worker rows silent
        for a day go too.)"""
        self._require_started()
        now = self.clock.time()
        deleted = await self.store.delete_expired(now)
        await self.store.delete_workers(now - heartbeat.KEEP_STOPPED)
        return deleted

    async def list_workers(self) -> list[dict[str, Any]]:
        """The engines sharing this database seen in the last day (worker health), most recent
        heartbeat first: ``id``, ``host``, ``pid``, ``status`` (``alive``, ``stopped``, or ``gone``:
        silent for longer than its ``lease_ttl``), ``concurrency``, ``lease_ttl``, ``started_at``,
        ``last_heartbeat_at``, ``seconds_since_heartbeat``, ``stopped_at``, ``executions_owned``
        (unfinished executions whose lease it holds) and ``workflows`` (``workflow_id``, ``version``)."""
        self._require_started()
        return await heartbeat.describe_workers(self)
