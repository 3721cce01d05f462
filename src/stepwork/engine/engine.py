"""``WorkflowEngine``: runs workflows with stored executions, completions from outside, timers,
recovery, listing and retention (SPEC §5 to §7)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
import math
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from stepwork.container import Container, Modules
from stepwork.engine.compiled import CompiledWorkflow, StepHandler
from stepwork.engine.context import StepContext
from stepwork.engine.durable import WAITING_NESTED, DurableRun
from stepwork.engine.ids import new_ulid
from stepwork.engine.persistence import apply_progress, restore_outputs
from stepwork.engine.records import WorkflowExecution, assemble
from stepwork.engine.registry import Runnable, get_workflow, registered_workflows
from stepwork.engine.results import TransactionInfo, WorkflowResult
from stepwork.engine.runner import _validate_events, error_to_raise, execute, finish
from stepwork.engine.scheduler import next_tick, tick_iso, tick_transaction_id, timer_id
from stepwork.engine.step_response import StepResponse
from stepwork.engine.subscriptions import Listeners, Subscriber, Subscriptions
from stepwork.errors import StepworkError
from stepwork.orchestration.definition import Plan
from stepwork.orchestration.execution_view import build_execution
from stepwork.orchestration.states import StepState, StepStatus, TransactionState
from stepwork.orchestration.transaction import FailureOutcome, Transaction
from stepwork.storage.base import ExecutionKey, ExecutionRow, ExecutionStore, LeaseLostError, ListQuery, TimerRow
from stepwork.storage.query import normalize_filters, normalize_order
from stepwork.storage.serialization import to_jsonable
from stepwork.storage.sqlite import SQLiteStore

__all__ = ["Clock", "SystemClock", "WorkflowEngine", "open_store"]

logger = logging.getLogger("stepwork.engine")
_INVALID = StepworkError.Types.INVALID_DATA
_FINISHED = ("done", "failed", "reverted")
DEFAULT_SQLITE_PATH = os.path.join(".stepwork", "stepwork.db")


class Clock(Protocol):
    """Where the engine reads time (a fake clock in tests)."""

    def time(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        """``time.time()``."""
        return time.time()


def open_store(database_url: str | None) -> ExecutionStore:
    """The store for a database URL: ``None`` (SQLite file ``./.stepwork/stepwork.db``),
    ``"sqlite://"`` (in memory), ``"sqlite:///path.db"``, ``"postgresql://user@host/db"``."""
    if database_url is None:
        return SQLiteStore(DEFAULT_SQLITE_PATH)
    if not isinstance(database_url, str):
        raise StepworkError(_INVALID, f"database_url must be a string, got {database_url!r}.")
    if database_url in ("sqlite://", "sqlite:///:memory:", "memory://"):
        return SQLiteStore(":memory:")
    if database_url.startswith("sqlite:///"):
        return SQLiteStore(database_url[len("sqlite:///"):])
    if database_url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from stepwork.storage.postgres import PostgresStore  # imported when used: psycopg loads slowly

        store: ExecutionStore = PostgresStore(database_url)
        return store
    raise StepworkError(_INVALID, f'Unsupported database_url "{database_url}". Use "sqlite:///path.db", '
                                  '"sqlite://" (in memory) or "postgresql://user@host/db".')


def parse_idempotency_key(key: str | Mapping[str, Any]) -> tuple[str, str, str, str]:
    """``(workflow_id, transaction_id, step_name, action)`` of a key string or mapping."""
    if isinstance(key, Mapping):
        parts = [key.get("workflow_id"), key.get("transaction_id"), key.get("step_id"), key.get("action", "invoke")]
    elif isinstance(key, str):
        parts = key.split(":")
        if len(parts) != 4:
            raise StepworkError(_INVALID, f'Invalid idempotency key "{key}": expected '
                                          '"workflow_id:transaction_id:step_name:invoke|compensate".')
    else:
        raise StepworkError(_INVALID, f"An idempotency key is a string or a mapping, got {key!r}.")
    if not all(isinstance(p, str) and p for p in parts):
        raise StepworkError(_INVALID, f"Invalid idempotency key {key!r}: workflow_id, transaction_id and step_id "
                                      "must be non-empty strings.")
    action = str(parts[3]).lower()
    if action not in ("invoke", "compensate"):
        raise StepworkError(_INVALID, f'Invalid idempotency key {key!r}: action must be "invoke" or "compensate".')
    return str(parts[0]), str(parts[1]), str(parts[2]), action


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise StepworkError(_INVALID, f"{name} must be a positive number of seconds, got {value!r}.")
    return float(value)


class WorkflowEngine:
    """Runs workflows and keeps their executions (SPEC §7).

    ``WorkflowEngine(database_url=None, *, lease_ttl=30.0, poll_interval=1.0, cleanup_interval=1800.0)``;
    ``async with engine:`` starts it (migrations, timer loop, recovery, cleanup) and stops it.
    The engine registers itself in ``engine.container`` as ``Modules.WORKFLOW_ENGINE``.
    """

    def __init__(self, database_url: str | None = None, *, lease_ttl: float = 30.0, poll_interval: float = 1.0,
                 cleanup_interval: float = 1800.0, container: Container | None = None,
                 clock: Clock | None = None) -> None:
        self.lease_ttl = _positive("lease_ttl", lease_ttl)
        self.poll_interval = _positive("poll_interval", poll_interval)
        self.cleanup_interval = _positive("cleanup_interval", cleanup_interval)
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
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._background_timers: dict[asyncio.Task[None], TimerRow] = {}
        self._inflight: set[asyncio.Task[None]] = set()  # timer fires and recoveries of the background loop
        self._templates: dict[Plan, tuple[str, str]] = {}
        self._parsed_templates: dict[str, dict[str, Any]] = {}
        self._stored_definitions: set[str] = set()
        self._scheduled: set[str] = set()
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store (applying migrations), resume what needs it, start the background loops."""
        if self._started:
            return
        await self.store.open()
        self._started = True
        await self._arm_schedules()
        await self._recover_orphans()
        await self._fire_due_timers()
        self._tasks = [asyncio.create_task(self._loop(self._poll, self.poll_interval), name="stepwork-timers"),
                       asyncio.create_task(self._loop(self._renew, self.lease_ttl / 3), name="stepwork-leases"),
                       asyncio.create_task(self._loop(self.cleanup_expired_executions, self.cleanup_interval,
                                                      first=False), name="stepwork-cleanup")]

    async def stop(self) -> None:
        """Stop the background loops and close the store."""
        if not self._started:
            return
        for task in self._tasks:
            task.cancel()
        for task in list(self._background):
            task.cancel()
        for task in [*self._tasks, *self._background]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._started = False
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
        await self._arm_schedules()
        await self._fire_due_timers(wait=wait)
        await self._recover_orphans(wait=wait)
        if wait and self._inflight:
            # What the background loop woke just before (it may have claimed the timers first).
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def _poll(self) -> None:
        """The background loop's turn: fire what is due without waiting for the runs it wakes."""
        await self._tick(wait=False)

    async def _renew(self) -> None:
        now = self.clock.time()
        await self.store.renew(self.owner, now + self.lease_ttl)
        for timer in list(self._background_timers.values()):  # background steps still running here
            timer.due_at = now + 2 * self.lease_ttl
            await self.store.add_timer(timer)
        fold = getattr(self.store, "fold_wal", None)  # SQLite: keep the write-ahead log short
        if fold is not None:
            await fold()

    def _busy(self, workflow_id: str, transaction_id: str) -> bool:
        lock = self._locks.get((workflow_id, transaction_id))
        return lock is not None and lock.locked()

    @contextlib.asynccontextmanager
    async def _locked(self, workflow_id: str, transaction_id: str) -> AsyncIterator[None]:
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

    # -- running ----------------------------------------------------------------------------------

    async def run(self, workflow_or_id: Runnable | str, input: Any = None, *,
                  transaction_id: str | None = None, context: Mapping[str, Any] | None = None,
                  throw_on_error: bool = True, events: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None,
                  result_from: str | None = None, container: Container | None = None) -> WorkflowResult[Any]:
        """Run a workflow (an object or a registered name) through this engine.

        A stored workflow (SPEC §2: ``store``, async steps, timeouts, retry intervals, ``idempotent``,
        ``retention_time``…) is checkpointed at every step; running again with the id of an
        unfinished execution resumes it; with a finished one, an ``idempotent`` workflow returns the
        stored result, otherwise a new run starts.
        """
        self._require_started()
        workflow = get_workflow(workflow_or_id) if isinstance(workflow_or_id, str) else workflow_or_id
        if not hasattr(workflow, "compiled"):
            raise StepworkError(_INVALID, f"run() takes a workflow or a workflow's name, got {workflow_or_id!r}.")
        compiled = workflow.compiled
        per_run = _validate_events(events) if events else None
        if result_from is not None:
            compiled.plan.step(result_from)
        ctx = dict(context) if context else {}
        if transaction_id is None:
            transaction_id = ctx.get("transaction_id")
        explicit = transaction_id is not None
        if transaction_id is None:
            ulid = new_ulid()
            transaction_id = "auto-" + ulid
            event_group_id = ctx.get("event_group_id") or ulid
        else:
            if not isinstance(transaction_id, str) or not transaction_id or ":" in transaction_id:
                raise StepworkError(_INVALID, "transaction_id must be a non-empty string without \":\", "
                                              f"got {transaction_id!r}.")
            event_group_id = ctx.get("event_group_id") or new_ulid()
        ctx["transaction_id"] = transaction_id
        ctx["event_group_id"] = event_group_id
        listeners = Listeners(self.subscriptions, compiled.name, transaction_id, per_run)
        if not compiled.plan.store:
            return await execute(compiled, input, container=container or self.container, context=ctx,
                                 transaction_id=transaction_id, throw_on_error=throw_on_error,
                                 result_from=result_from, listeners=listeners)
        if explicit and self._busy(compiled.name, transaction_id):
            raise StepworkError(StepworkError.Types.CONFLICT,
                                f"Transaction already started for transaction_id: {transaction_id}")
        async with self._locked(compiled.name, transaction_id):
            if explicit:
                existing = await self.store.latest(compiled.name, transaction_id)
                if existing is not None:
                    if existing.state not in _FINISHED:
                        return await self._resume(compiled, existing, "run", listeners=listeners,
                                                  throw_on_error=throw_on_error, result_from=result_from,
                                                  conflict_if_held=True)
                    if compiled.plan.options.idempotent:
                        return await self._stored_result(compiled, existing, listeners, throw_on_error, result_from)
            run = await self._create(compiled, input, transaction_id, ctx, event_group_id, listeners)
            await self._drive(run)
            return await finish(run, throw_on_error=throw_on_error, result_from=result_from)

    async def _drive(self, run: DurableRun) -> None:
        """Advance ``run``; a nested run that finished outside its parent's call completes the parent's step."""
        try:
            await run.drive()
        except BaseException as exc:
            if not isinstance(exc, LeaseLostError):
                # The drive stopped half-way (a database error, a crash-like exit): hand the lease to
                # nobody alive, so that recovery takes the execution over once the lease expires
                # (this engine would otherwise renew it for as long as it lives).
                with contextlib.suppress(Exception):
                    await self.store.abandon(run.key, self.owner)
            raise
        if run.finished and run.parent_step_idempotency_key is not None and not run.inline:
            await self._complete_parent(run)

    async def _complete_parent(self, child: DurableRun) -> None:
        key = child.parent_step_idempotency_key
        assert key is not None
        try:
            if child.txn.state is TransactionState.DONE:
                result = await child.resolve_result(None)
                await self.set_step_success(key, StepResponse(result, child.nested_ref()), throw_on_error=False)
            else:
                await self.set_step_failure(key, error_to_raise(child.txn), throw_on_error=False)
        except StepworkError as exc:
            logger.warning("Could not complete the parent step %s of nested execution %s: %s", key,
                           child.transaction_id, exc)

    async def run_nested(self, parent: DurableRun, compiled: CompiledWorkflow, value: Any,
                         ctx: StepContext) -> Any:
        """Run ``compiled`` as the nested workflow of a durable parent's step (stored too, so a crash
        loses nothing). Returns the step's response, or ``WAITING_NESTED`` if the child waits."""
        tid = f"{ctx.step_name}-{parent.transaction_id}"
        if ctx.attempt > 1:
            tid += f"-attempt-{ctx.attempt}"
        parent_key = ctx.idempotency_key
        async with self._locked(compiled.name, tid):
            existing = await self.store.latest(compiled.name, tid)
            if existing is not None and existing.state in _FINISHED:
                # The parent step is invoked again (after a crash) but its child already finished.
                child = await self._load(compiled, existing, existing.version)
            elif existing is not None:
                child = await self._load(compiled, existing, await self._acquire(existing, wait=True))
                child.reason = "recovery"
            else:
                context = dict(parent.context)
                context.update(transaction_id=tid, event_group_id=parent.event_group_id,
                               parent_step_idempotency_key=parent_key)
                child = await self._create(compiled, value, tid, context, parent.event_group_id,
                                           Listeners(self.subscriptions, compiled.name, tid, None), parent_key)
            if child.key not in parent.child_keys:
                parent.child_keys.append(child.key)
            if not child.finished:
                child.inline = True
                try:
                    await child.drive()
                finally:
                    child.inline = False
        state = child.txn.state
        if state is TransactionState.DONE:
            return StepResponse(await child.resolve_result(None), child.nested_ref())
        if child.finished:
            raise error_to_raise(child.txn)
        return WAITING_NESTED

    async def revert_nested(self, value: Any) -> None:
        """Compensation of a nested-workflow step: revert the stored child it ran."""
        if not isinstance(value, dict) or not {"workflow_id", "transaction_id", "run_id"} <= value.keys():
            return
        key = ExecutionKey(value["workflow_id"], value["transaction_id"], value["run_id"])
        async with self._locked(key.workflow_id, key.transaction_id):
            row = await self.store.get(key)
            if row is None or row.state not in ("done", "invoking"):
                return  # gone, reverting already, or it failed and reverted itself
            now = self.clock.time()
            version = await self.store.acquire(key, self.owner, now + self.lease_ttl, now, include_done=True)
            if version is None:
                version = await self._acquire(row, wait=True)
            child = await self._load(get_workflow(key.workflow_id).compiled, row, version)
            txn = child.txn
            for i in txn.running_steps():  # a child still waiting: its waiting steps fail at once
                if txn.waiting[i]:
                    txn.fail_waiting(i, StepworkError(StepworkError.Types.NOT_ALLOWED,
                                                      "The parent workflow is compensating."), permanent=True)
                    child.dirty.add(i)
            txn.failing = False
            txn.begin_compensation(now, cancel=True)
            child.inline = True
            await child.flush()
            await child.drive()
        if child.txn.state is not TransactionState.REVERTED:
            raise error_to_raise(child.txn, handler_type="compensate")

    async def _create(self, compiled: CompiledWorkflow, payload: Any, transaction_id: str, ctx: dict[str, Any],
                      event_group_id: str, listeners: Any, parent_key: str | None = None) -> DurableRun:
        plan = compiled.plan
        payload_json = to_jsonable(payload, f'The input of workflow "{compiled.name}"')
        run = DurableRun(self, compiled, payload, transaction_id=transaction_id, run_id=new_ulid(), context=ctx,
                         event_group_id=event_group_id, execution_id="wf_exec_" + new_ulid(),
                         parent_step_idempotency_key=parent_key, listeners=listeners)
        now = self.clock.time()
        definition_hash, template = self._template(compiled)
        if definition_hash not in self._stored_definitions:
            await self.store.put_definition(definition_hash, compiled.name, template, now)
            self._stored_definitions.add(definition_hash)
        row = ExecutionRow(
            id=run.execution_id, workflow_id=compiled.name, transaction_id=transaction_id, run_id=run.run_id,
            state=TransactionState.NOT_STARTED.value, execution=None, definition_hash=definition_hash,
            context={"data": {"payload": payload_json, "invoke": {}, "compensate": {}}, "errors": []},
            retention_time=plan.options.retention_time, created_at=now, updated_at=now, version=0,
            lease_owner=self.owner, lease_expires_at=now + self.lease_ttl,
            progress=None)
        # Inserted by the run's first checkpoint, in the same commit as its first step's start.
        run.pending_row = row
        return run

    def _template(self, compiled: CompiledWorkflow) -> tuple[str, str]:
        """``(hash, JSON text)`` of the static part of a workflow's execution records, built once per plan.

        The nested ``definition`` tree is kept as its flat stages (a 1,000-step tree is too deep for
        JSON libraries); readers nest it again.
        """
        plan = compiled.plan
        cached = self._templates.get(plan)
        if cached is None:
            record = build_execution(Transaction(plan, "", "", None))
            for key in ("transactionId", "runId", "metadata"):
                record.pop(key, None)
            record["definition"] = None
            record["stages"] = [[plan.steps[i].definition for i in stage] for stage in plan.stages]
            text = json.dumps(record, separators=(",", ":"))
            cached = self._templates[plan] = (hashlib.sha256(text.encode()).hexdigest()[:32], text)
            self._parsed_templates[cached[0]] = record
        return cached

    async def _template_record(self, definition_hash: str | None) -> dict[str, Any] | None:
        """The parsed template stored under ``definition_hash`` (cached)."""
        if definition_hash is None:
            return None
        record = self._parsed_templates.get(definition_hash)
        if record is None:
            text = await self.store.get_definition(definition_hash)
            if text is None:
                return None
            record = self._parsed_templates[definition_hash] = json.loads(text)
        return record

    async def _assemble(self, row: ExecutionRow) -> WorkflowExecution:
        return assemble(row, await self.store.steps(row.key), await self._template_record(row.definition_hash))

    async def _load(self, compiled: CompiledWorkflow, row: ExecutionRow, version: int,
                    listeners: Any = None) -> DurableRun:
        # Read again: the row given may be older than the lease just taken (another process may
        # have advanced the execution meanwhile).
        fresh = await self.store.get(row.key)
        if fresh is None:
            raise StepworkError(StepworkError.Types.NOT_FOUND, f"Transaction {row.transaction_id} could not be found.")
        row = fresh
        if row.definition_hash is not None and row.definition_hash != self._template(compiled)[0]:
            raise StepworkError(StepworkError.Types.UNEXPECTED_STATE,
                                f'Execution "{row.id}" of workflow "{row.workflow_id}" was stored with another step '
                                "graph than the workflow registered now; it is left as it is. Run it with the "
                                "definition it started with, or cancel it.")
        progress = row.progress
        metadata = progress.get("metadata") or {}
        payload = (row.context or {}).get("data", {}).get("payload")
        if listeners is None:
            listeners = Listeners(self.subscriptions, row.workflow_id, row.transaction_id, None)
        run = DurableRun(self, compiled, payload, transaction_id=row.transaction_id, run_id=row.run_id,
                         context=dict(progress.get("context") or {}),
                         event_group_id=metadata.get("eventGroupId") or new_ulid(), execution_id=row.id,
                         parent_step_idempotency_key=metadata.get("parentStepIdempotencyKey"), listeners=listeners)
        apply_progress(run.txn, progress, row.state)
        restore_outputs(compiled, run.txn, await self.store.steps(row.key))
        run.version = version
        run.stored_state = row.state
        run.child_keys = [ExecutionKey(*k) for k in progress.get("children") or []]
        return run

    async def _acquire(self, row: ExecutionRow, *, wait: bool) -> int:
        deadline = time.monotonic() + (self.lease_ttl if wait else 0)
        delay = 0.005
        while True:
            now = self.clock.time()
            version = await self.store.acquire(row.key, self.owner, now + self.lease_ttl, now)
            if version is not None:
                return version
            current = await self.store.get(row.key)
            if current is None:
                raise StepworkError(StepworkError.Types.NOT_FOUND,
                                    f"Transaction {row.transaction_id} could not be found.")
            if current.state in _FINISHED:  # finished by whoever held it meanwhile
                raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                                    f'Transaction {row.transaction_id} has already finished ("{current.state}"); '
                                    "a finished execution never changes again.")
            if time.monotonic() >= deadline:
                raise StepworkError(StepworkError.Types.CONFLICT,
                                    f"Transaction already started for transaction_id: {row.transaction_id}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    async def _resume(self, compiled: CompiledWorkflow, row: ExecutionRow, reason: str, *, listeners: Any,
                      throw_on_error: bool, result_from: str | None,
                      conflict_if_held: bool = False) -> WorkflowResult[Any]:
        version = await self._acquire(row, wait=not conflict_if_held)
        run = await self._load(compiled, row, version, listeners)
        run.reason = reason
        await self._drive(run)
        return await finish(run, throw_on_error=throw_on_error, result_from=result_from)

    async def _stored_result(self, compiled: CompiledWorkflow, row: ExecutionRow, listeners: Any,
                             throw_on_error: bool, result_from: str | None) -> WorkflowResult[Any]:
        run = await self._load(compiled, row, row.version, listeners)
        return await finish(run, throw_on_error=throw_on_error, result_from=result_from)

    # -- completions from outside -----------------------------------------------------------------

    async def _open_step(self, key: str | Mapping[str, Any]) -> tuple[CompiledWorkflow, ExecutionRow, int, str]:
        workflow_id, transaction_id, step_name, action = parse_idempotency_key(key)
        compiled = get_workflow(workflow_id).compiled
        try:
            index = compiled.plan.step(step_name).index
        except StepworkError:
            raise StepworkError(StepworkError.Types.NOT_FOUND,
                                f'Action not found: workflow "{workflow_id}" has no step "{step_name}".') from None
        row = await self.store.latest(workflow_id, transaction_id)
        if row is None:
            raise StepworkError(StepworkError.Types.NOT_FOUND, f"Transaction {transaction_id} could not be found.")
        return compiled, row, index, action

    async def set_step_success(self, idempotency_key: str | Mapping[str, Any], step_response: Any = None, *,
                               throw_on_error: bool = True) -> WorkflowResult[Any]:
        """Complete a waiting async step (or ``compensate_async`` compensation) with ``step_response``
        (a ``StepResponse`` keeps its compensation input) and continue the workflow in this call."""
        self._require_started()
        compiled, row, i, action = await self._open_step(idempotency_key)
        async with self._locked(row.workflow_id, row.transaction_id):
            row = await self._latest_or_fail(row)
            run = await self._load(compiled, row, await self._acquire(row, wait=True))
            if isinstance(step_response, StepResponse):
                output, comp = step_response.output, step_response.compensate_input
            else:
                output, comp = step_response, None
            txn = run.txn
            async with self._refusal_releases(run):
                self._check_action(run, i, action, "success")
                if action == "invoke":
                    run._encode(i, output, comp)
                    txn.complete_waiting(i, output, comp)
                    event = "on_step_success"
                else:
                    txn.complete_compensation_waiting(i, output)
                    event = "on_compensate_step_success"
            run.dirty.add(i)
            run.after_resume.append((event, {"step": i, "response": output}))
            await self._drive(run)
            return await finish(run, throw_on_error=throw_on_error, result_from=None)

    async def set_step_failure(self, idempotency_key: str | Mapping[str, Any], error: Any = None, *,
                               force_permanent_failure: bool = False,
                               throw_on_error: bool = True) -> WorkflowResult[Any]:
        """Fail a waiting async step (or compensation): its retry policy applies unless
        ``force_permanent_failure``; the workflow continues (or compensates) in this call."""
        self._require_started()
        compiled, row, i, action = await self._open_step(idempotency_key)
        async with self._locked(row.workflow_id, row.transaction_id):
            row = await self._latest_or_fail(row)
            run = await self._load(compiled, row, await self._acquire(row, wait=True))
            txn = run.txn
            async with self._refusal_releases(run):
                self._check_action(run, i, action, "failure")
                if action == "invoke":
                    outcome = txn.fail_waiting(i, error, permanent=force_permanent_failure)
                else:
                    txn.fail_compensation_waiting(i, error, permanent=force_permanent_failure)
            if action == "invoke":
                if outcome is FailureOutcome.RETRY:
                    interval = compiled.handlers[i].step.options.retry_interval
                    if interval:
                        await run._arm_retry(i, interval, "retry")
                else:
                    run.after_resume.append(("on_step_failure", {"step": i, "errors": [txn.errors[-1].to_dict()]}))
            run.dirty.add(i)
            await self._drive(run)
            return await finish(run, throw_on_error=throw_on_error, result_from=None)

    async def retry_step(self, idempotency_key: str | Mapping[str, Any]) -> WorkflowResult[Any]:
        """Invoke again a step that waits for its response (e.g. a stuck async step)."""
        self._require_started()
        compiled, row, i, _action = await self._open_step(idempotency_key)
        async with self._locked(row.workflow_id, row.transaction_id):
            row = await self._latest_or_fail(row)
            run = await self._load(compiled, row, await self._acquire(row, wait=True))
            txn = run.txn
            async with self._refusal_releases(run):
                if txn.inv_status[i] is not StepStatus.WAITING_RESPONSE or txn.inv_state[i] is not StepState.INVOKING:
                    shown = txn.inv_status[i] if txn.inv_state[i] is StepState.INVOKING else txn.inv_state[i]
                    raise StepworkError(StepworkError.Types.NOT_ALLOWED, f"Cannot retry step when status is {shown}")
            txn.waiting[i] = False
            run.dirty.add(i)
            await self._drive(run)
            return await finish(run, throw_on_error=False, result_from=None)

    @contextlib.asynccontextmanager
    async def _refusal_releases(self, run: DurableRun) -> AsyncIterator[None]:
        """A request refused after the lease was taken gives the lease back (else the execution would
        stay locked while this engine lives)."""
        try:
            yield
        except BaseException:
            await self.store.release(run.key, self.owner)
            raise

    async def _latest_or_fail(self, row: ExecutionRow) -> ExecutionRow:
        latest = await self.store.get(row.key)
        if latest is None:
            raise StepworkError(StepworkError.Types.NOT_FOUND, f"Transaction {row.transaction_id} could not be found.")
        if latest.state in _FINISHED:
            raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                                f'Transaction {row.transaction_id} has already finished ("{latest.state}"); a finished '
                                "execution never changes again.")
        return latest

    @staticmethod
    def _check_action(run: DurableRun, i: int, action: str, what: str) -> None:
        txn = run.txn
        compensating = txn.comp_state[i] is StepState.COMPENSATING
        if action == "invoke" and compensating:
            raise StepworkError(_INVALID, "Incorrect action type: the step is compensating; use action \"compensate\".")
        if action == "compensate" and not compensating:
            if txn.inv_state[i] is StepState.INVOKING:
                raise StepworkError(_INVALID, "Incorrect action type: the step is invoking; use action \"invoke\".")
            raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                                f"Cannot set step {what} when status is {txn.comp_status[i]}")

    async def start_background(self, run: DurableRun, handler: StepHandler, value: Any, ctx: StepContext) -> None:
        """Run a ``background_execution`` step's invoke in a task; its outcome completes the step.

        A "background" timer stands for the task in the database: this engine keeps pushing it
        forward while the task lives; if the process dies, it comes due and the step is invoked again.
        """
        key = ctx.idempotency_key
        k = run.key
        index = handler.step.index
        timer = TimerRow(f"background:{k.workflow_id}:{k.transaction_id}:{k.run_id}:{index}:{ctx.attempt}",
                         k.workflow_id, k.transaction_id, k.run_id, "background",
                         self.clock.time() + 2 * self.lease_ttl, index)
        await self.store.add_timer(timer)

        async def work() -> None:
            try:
                r = handler.invoke(value, ctx)
                if inspect.isawaitable(r):
                    r = await r
            except Exception as exc:  # the step's failure, applied with its retry policy
                await self._complete_background(self.set_step_failure(key, exc, throw_on_error=False))
            else:
                await self._complete_background(self.set_step_success(key, r, throw_on_error=False))

        task = asyncio.create_task(work(), name=f"stepwork-background-{key}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        self._background_timers[task] = timer
        task.add_done_callback(lambda t: self._background_timers.pop(t, None))

    @staticmethod
    async def _complete_background(completion: Any) -> None:
        try:
            await completion
        except Exception:
            logger.exception("Completing a background step failed.")

    # -- cancel -----------------------------------------------------------------------------------

    async def cancel(self, workflow_id: str, transaction_id: str, *,
                     throw_on_error: bool = True) -> WorkflowResult[Any] | None:
        """Compensate every completed step of an ``invoking`` or ``done`` stored execution → ``reverted``.

        A waiting async step is failed at once. ``failed`` or compensating executions raise
        ``not_allowed``; an unknown one raises ``not_found`` (``None`` with ``throw_on_error=False``).
        """
        self._require_started()
        compiled = get_workflow(workflow_id).compiled
        async with self._locked(workflow_id, transaction_id):
            row = await self.store.latest(workflow_id, transaction_id)
            if row is None:
                if not throw_on_error:
                    return None
                raise StepworkError(StepworkError.Types.NOT_FOUND, f"Transaction {transaction_id} could not be found.")
            if row.state == "failed":
                raise StepworkError(StepworkError.Types.NOT_ALLOWED, "Cannot revert a permanent failed transaction.")
            if row.state == "reverted":
                raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                                    "Cannot revert a transaction that is already reverted.")
            if row.state in ("compensating", "waiting_to_compensate"):
                raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                                    "Cannot revert a transaction that is already compensating.")
            now = self.clock.time()
            version = await self.store.acquire(row.key, self.owner, now + self.lease_ttl, now, include_done=True)
            if version is None:
                version = await self._acquire(row, wait=True)
            run = await self._load(compiled, row, version)
            txn = run.txn
            for i in range(len(txn.inv_state)):
                if txn.inv_state[i] is StepState.INVOKING and txn.waiting[i]:
                    txn.fail_waiting(i, StepworkError(StepworkError.Types.NOT_ALLOWED,
                                                      "The transaction was cancelled."), permanent=True)
                    run.dirty.add(i)
            txn.failing = False
            txn.begin_compensation(now, cancel=True)
            if run.listeners:
                await run._emit("on_compensate_begin")
            await run.flush()
            await self._drive(run)
            return await finish(run, throw_on_error=False, result_from=None)

    async def get_running_transaction(self, workflow_id: str, transaction_id: str) -> TransactionInfo | None:
        """The state of an unfinished stored execution, or ``None``."""
        self._require_started()
        row = await self.store.latest(workflow_id, transaction_id)
        if row is None or row.state in _FINISHED:
            return None
        run = await self._load(get_workflow(workflow_id).compiled, row, row.version)
        return TransactionInfo(run.txn)

    # -- subscriptions ----------------------------------------------------------------------------

    async def subscribe(self, workflow_id: str, subscriber: Subscriber, *, transaction_id: str | None = None,
                        subscriber_id: str | None = None) -> None:
        """Receive the events of ``workflow_id`` (of one transaction if given) as dicts."""
        self.subscriptions.subscribe(workflow_id, subscriber, transaction_id, subscriber_id)

    async def unsubscribe(self, workflow_id: str, subscriber_or_id: Any, *, transaction_id: str | None = None) -> None:
        """Stop a subscription (by function or ``subscriber_id``)."""
        self.subscriptions.unsubscribe(workflow_id, subscriber_or_id, transaction_id)

    # -- reading ----------------------------------------------------------------------------------

    async def list_and_count_workflow_executions(self, filters: Mapping[str, Any] | None = None, *, skip: int = 0,
                                                 take: int | None = None,
                                                 order: Any = None) -> tuple[list[WorkflowExecution], int]:
        """Stored executions matching ``filters`` (SPEC §7), and their total count."""
        self._require_started()
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
            raise StepworkError(_INVALID, f"skip must be an integer >= 0, got {skip!r}.")
        if take is not None and (isinstance(take, bool) or not isinstance(take, int) or take < 0):
            raise StepworkError(_INVALID, f"take must be an integer >= 0 or None, got {take!r}.")
        query = ListQuery(normalize_filters(filters), skip, take, normalize_order(order))
        rows, count = await self.store.list_rows(query)
        return [await self._assemble(row) for row in rows], count

    async def list_workflow_executions(self, filters: Mapping[str, Any] | None = None, *, skip: int = 0,
                                       take: int | None = None, order: Any = None) -> list[WorkflowExecution]:
        """Stored executions matching ``filters``."""
        return (await self.list_and_count_workflow_executions(filters, skip=skip, take=take, order=order))[0]

    async def retrieve_workflow_execution(self, id: str | Mapping[str, str]) -> WorkflowExecution:
        """One stored execution by its ``wf_exec_…`` id (or ``{workflow_id, transaction_id, run_id}``)."""
        self._require_started()
        if isinstance(id, Mapping):
            try:
                key = ExecutionKey(str(id["workflow_id"]), str(id["transaction_id"]), str(id["run_id"]))
            except KeyError as exc:
                raise StepworkError(_INVALID, f"Missing {exc.args[0]!r} in the execution key {dict(id)!r}.") from None
            row = await self.store.get(key)
        elif isinstance(id, str):
            row = await self.store.get_by_id(id)
        else:
            raise StepworkError(_INVALID, f"An execution id is a string, got {id!r}.")
        if row is None:
            raise StepworkError(StepworkError.Types.NOT_FOUND, f"Workflow execution {id!r} was not found.")
        return await self._assemble(row)

    async def cleanup_expired_executions(self) -> int:
        """Delete finished executions whose retention ran out; return how many."""
        self._require_started()
        return await self.store.delete_expired(self.clock.time())

    # -- timers and recovery ----------------------------------------------------------------------

    def _track(self, work: Any, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _fire_due_timers(self, *, wait: bool = True) -> None:
        timers = await self.store.due_timers(self.clock.time(), self.owner, 100, self.lease_ttl)

        async def fire(timer: TimerRow) -> None:
            try:
                await self._fire(timer)
            except Exception:
                logger.exception("Timer %s failed; it fires again later.", timer.id)
        # Side by side: a slow step woken by one timer must not hold up the others; the background
        # loop does not even wait for them (it comes round again at the next poll).
        if wait:
            await asyncio.gather(*[fire(t) for t in timers])
        else:
            for t in timers:
                self._track(fire(t), f"stepwork-timer-{t.id}")

    # -- schedules ----------------------------------------------------------------------------------

    async def _arm_schedules(self) -> None:
        """Make sure every registered scheduled workflow has its timer (once per workflow)."""
        for name, workflow in registered_workflows().items():
            schedule = workflow.options.schedule
            if schedule is None or name in self._scheduled:
                continue
            due = next_tick(schedule, self.clock.time())
            await self.store.add_timer(TimerRow(timer_id(name), name, "", "", "schedule", due, None, {"count": 0}),
                                       replace=False)
            self._scheduled.add(name)

    async def _fire_schedule(self, timer: TimerRow) -> None:
        try:
            workflow = get_workflow(timer.workflow_id)
        except StepworkError:
            logger.warning("Tried to execute a scheduled workflow with ID %s that does not exist, removing it from "
                           "the scheduler.", timer.workflow_id)
            await self.store.delete_timer(timer.id)
            return
        schedule = workflow.options.schedule
        if schedule is None:
            await self.store.delete_timer(timer.id)
            return
        tick = timer.due_at
        count = int(timer.data.get("count", 0))
        limit = schedule.get("number_of_executions")
        run_it = True
        if schedule.get("concurrency", "forbid") == "forbid":
            running = await self.store.list_rows(ListQuery(normalize_filters(
                {"workflow_id": workflow.name, "state": ["not_started", "invoking", "waiting_to_compensate",
                                                         "compensating"]}), 0, 1, normalize_order(None), False))
            run_it = running[1] == 0
        if run_it:
            count += 1
        # Move the timer on first, so that no other engine runs this tick again.
        if limit is not None and count >= limit:
            await self.store.delete_timer(timer.id)
        else:
            due = next_tick(schedule, max(tick, self.clock.time()))
            await self.store.add_timer(TimerRow(timer.id, timer.workflow_id, "", "", "schedule", due, None,
                                                {"count": count}))
        if not run_it:
            logger.info("Skipped tick %s of %s: its previous run is still running (concurrency \"forbid\").",
                        tick_iso(tick), workflow.name)
            return
        try:
            await self.run(workflow, {"scheduled_for": tick_iso(tick)},
                           transaction_id=tick_transaction_id(workflow.name, tick), throw_on_error=False)
        except StepworkError as exc:
            if exc.type != StepworkError.Types.CONFLICT:
                raise

    async def _fire(self, timer: TimerRow) -> None:
        if timer.kind == "schedule":
            await self._fire_schedule(timer)
            return
        if timer.kind == "background":
            live = next((t for t in self._background_timers.values() if t.id == timer.id), None)
            if live is not None:  # the step still runs here: push its timer on
                live.due_at = self.clock.time() + 2 * self.lease_ttl
                await self.store.add_timer(live)
                return
        key = ExecutionKey(timer.workflow_id, timer.transaction_id, timer.run_id)
        async with self._locked(timer.workflow_id, timer.transaction_id):
            row = await self.store.get(key)
            if row is None or row.state in _FINISHED:
                await self.store.delete_timer(timer.id)
                return
            now = self.clock.time()
            version = await self.store.acquire(key, self.owner, now + self.lease_ttl, now)
            if version is None:
                return  # another process drives it; the claim expires and the timer fires again
            run = await self._load(get_workflow(timer.workflow_id).compiled, row, version)
            await self.store.delete_timer(timer.id)
            run.reason = timer.kind
            run.reason_step = timer.step_index
            await self._drive(run)
            await finish(run, throw_on_error=False, result_from=None)

    async def _recover_orphans(self, *, wait: bool = True) -> None:
        async def recover(key: ExecutionKey) -> None:
            try:
                await self._recover(key)
            except Exception:
                logger.exception("Recovery of %s/%s failed; it is tried again later.", key.workflow_id,
                                 key.transaction_id)
        keys = await self.store.orphans(self.clock.time(), 100)
        if wait:
            await asyncio.gather(*[recover(k) for k in keys])
        else:
            for k in keys:
                self._track(recover(k), f"stepwork-recover-{k.transaction_id}")

    async def _recover(self, key: ExecutionKey) -> None:
        if self._busy(key.workflow_id, key.transaction_id):
            return  # this process is on it already (an earlier poll's recovery still runs)
        async with self._locked(key.workflow_id, key.transaction_id):
            row = await self.store.get(key)
            if row is None or row.state in _FINISHED:
                return
            now = self.clock.time()
            version = await self.store.acquire(key, self.owner, now + self.lease_ttl, now)
            if version is None:
                return
            logger.info("Recovering execution %s of %s (its owner %s stopped).", row.transaction_id,
                        row.workflow_id, row.lease_owner)
            run = await self._load(get_workflow(key.workflow_id).compiled, row, version)
            run.reason = "recovery"
            await self._drive(run)
            await finish(run, throw_on_error=False, result_from=None)

