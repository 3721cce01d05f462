"""The checkpointer of a stored run: what the one run loop writes, and when.

A run in memory has no checkpointer. A stored run's checkpointer writes each step start before
the step's code runs, together with the previous step's result (one commit per step boundary),
keeps the encoded values of finished steps, arms durable timers (retry waits, step timeouts,
awaiting retries, the workflow's timeout) and writes the end: one fenced write, or a delete.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from stepwork.engine.faults import fault_point
from stepwork.engine.persistence import (
    encode_step_values,
    error_text,
    progress_of,
    progress_tail,
    safe_jsonable,
    step_row,
)
from stepwork.engine.run_events import emit
from stepwork.engine.step_calls import TimedOut
from stepwork.errors import StepTimeoutError, TransactionTimeoutError
from stepwork.orchestration.failures import StepFailure
from stepwork.orchestration.states import StepState, TransactionState
from stepwork.storage.base import ExecutionRow, FinishData, TimerRow

if TYPE_CHECKING:
    from stepwork.engine.compiled import StepHandler
    from stepwork.engine.context import StepContext
    from stepwork.engine.engine import WorkflowEngine
    from stepwork.engine.run import Run

__all__ = ["StoredCheckpointer"]


class StoredCheckpointer:
    """Writes one run's checkpoints to the engine's store, fenced by version and lease owner."""

    __slots__ = (
        "consumed",
        "context_json",
        "dirty",
        "enc_comp",
        "enc_out",
        "engine",
        "error_texts",
        "execution_id",
        "flush_waiters",
        "flushing",
        "has_timers",
        "pending_row",
        "progress_signature",
        "progress_text",
        "retention_time",
        "run",
        "stored_progress",
        "stored_state",
        "version",
    )

    def __init__(self, engine: WorkflowEngine, run: Run, execution_id: str) -> None:
        self.engine = engine
        self.run = run
        self.execution_id = execution_id
        # One write at a time (parallel siblings checkpoint one after the other): a flag, and the
        # flushes waiting for it (an asyncio.Lock costs more than the rest of a step's bookkeeping).
        self.flushing = False
        self.flush_waiters: list[asyncio.Future[None]] = []
        self.version = 0
        self.dirty: set[int] = set()
        self.enc_out: dict[int, str | None] = {}
        self.enc_comp: dict[int, str | None] = {}
        self.retention_time = run.compiled.plan.options.retention_time
        self.context_json: Any = None
        self.error_texts: list[str] = []  # txn.errors as JSON texts, in order
        self.pending_row: ExecutionRow | None = None  # a new execution, inserted by its first checkpoint
        self.stored_progress: str | None = None  # the progress text written last
        self.stored_state = "not_started"
        self.progress_signature: tuple[Any, ...] = ()
        self.progress_text: str | None = None
        # Timers this run was woken by: deleted by the next write, in the same commit as their effect
        # (a process that dies before writing leaves them, and they fire again elsewhere).
        self.consumed: list[str] = []
        self.has_timers = True  # whether the execution may have timers (a new one has none: see create)

    # -- what the run loop calls ------------------------------------------------------------------

    async def step_started(self, i: int) -> None:
        """Step ``i`` (or its compensation) is about to be called: commit that first."""
        run = self.run
        h = run.handlers[i]
        fault_point("checkpoint.before", h.name)
        dirty = self.dirty
        dirty.add(i)
        txn = run.txn
        opts = h.step.options
        if opts.timeout is not None and txn.attempts[i] == 1 and txn.inv_state[i] is StepState.INVOKING and (
                opts.is_async or opts.retry_interval or not opts.auto_retry):
            # The step may wait outside any call (for its completion, a retry): a durable timer ends it.
            await self.arm(i, opts.timeout, "step_timeout")
        # (``_value_``: the member's text without the ``value`` property's descriptor call.)
        if (self.flushing or self.pending_row is not None or self.consumed
                or txn.state._value_ != self.stored_state or self.progress() != self.stored_progress):
            await self.flush()
        else:
            # The common step boundary: only step rows changed (the last step's result, this one's
            # start). Written without the general path's checks.
            enc_out = self.enc_out
            enc_comp = self.enc_comp
            rows = [step_row(txn, j, enc_out.get(j), enc_comp.get(j)) for j in sorted(dirty)]
            dirty.clear()
            self.flushing = True
            try:
                self.version = await self.engine.store.write_steps(run.key, self.engine.owner, self.version, rows)
            finally:
                self.flushing = False
                if self.flush_waiters:
                    self._wake_next()
        fault_point("checkpoint.after", h.name)

    async def step_settled(self, i: int) -> None:
        """Step ``i`` succeeded, failed or waits: keep it for the next commit (now, in a parallel stage)."""
        self.dirty.add(i)
        run = self.run
        txn = run.txn
        if txn.waiting[i] and txn.inv_state[i] is StepState.INVOKING:
            opts = run.handlers[i].step.options
            interval = opts.retry_interval_awaiting
            cap = opts.max_awaiting_retries
            if interval and (cap is None or txn.attempts[i] < cap):
                await self.arm(i, interval, "awaiting_retry")
        plan = run.compiled.plan
        if len(plan.stages[plan.steps[i].stage]) > 1:
            await self.flush()  # a parallel sibling may run on for long: keep this result safe now

    def encode(self, i: int, output: Any, comp: Any) -> None:
        """Encode a step's values now, so a value that cannot be stored fails the step (it is raised
        inside the step's error handling) before anything is written."""
        run = self.run
        self.enc_out[i], self.enc_comp[i] = encode_step_values(run.handlers[i].name,
                                                               run.compiled.plan.save_response[i], output, comp)

    async def arm_retry(self, i: int, delay: float, kind: str) -> None:
        """A retry (or compensation retry) of step ``i`` in ``delay`` seconds, on a durable timer."""
        self.run.txn.retry_at[i] = await self.arm(i, delay, kind)
        self.dirty.add(i)

    async def arm(self, i: int | None, delay: float, kind: str) -> float:
        """A durable timer ``kind`` for step ``i`` in ``delay`` seconds; its id makes it unique per attempt."""
        engine = self.engine
        self.has_timers = True
        due = engine.clock.time() + delay
        attempt = self.run.txn.attempts[i] if i is not None else 0
        k = self.run.key
        await engine.store.add_timer(TimerRow(f"{kind}:{k.workflow_id}:{k.transaction_id}:{k.run_id}:{i}:{attempt}",
                                              k.workflow_id, k.transaction_id, k.run_id, kind, due, i))
        return due

    async def start_background(self, h: StepHandler, value: Any, ctx: StepContext) -> None:
        """A ``background_execution`` step: its invoke runs in a task of the engine's."""
        self.has_timers = True  # the task's stand-in timer
        await self.engine.start_background(self.run, h, value, ctx)

    async def suspend(self) -> None:
        """The run waits (a timer, a completion): write where it is and give the lease back."""
        await self.flush(release=True)

    async def finished(self) -> None:
        """The run reached its end: one last fenced write (or a delete, without retention)."""
        # The records are assembled on read from the initial ones, the progress and the step rows, so
        # finishing writes no more than any other checkpoint. A nested run is kept while its parent
        # may still revert it: the parent's finish decides.
        run = self.run
        nested = run.parent_step_idempotency_key is not None
        await self.flush(finish=FinishData(delete=self.retention_time is None and not nested,
                                           timers=self.has_timers))
        if run.children:
            engine = self.engine
            await engine.store.finish_children(run.children, self.retention_time, engine.clock.time())

    async def apply_timer(self, reason: str, i: int | None) -> None:
        """What a fired timer means before the run goes on."""
        run = self.run
        txn = run.txn
        dirty = self.dirty
        if reason == "transaction_timeout" and txn.state is TransactionState.INVOKING and not txn.failing:
            txn.timed_out_at = run.now()
            if run.listeners:
                await emit(run, "on_timeout")
            for j in txn.running_steps():
                txn.waiting[j] = False
                await run._invoke_failed(j, TransactionTimeoutError(), timed_out=TimedOut(True))
                dirty.add(j)
            if not txn.failing:
                txn.failing = True
                txn.errors.append(StepFailure(None, "invoke", TransactionTimeoutError()))
        elif reason == "step_timeout" and i is not None and txn.inv_state[i] is StepState.INVOKING:
            opts = run.handlers[i].step.options
            txn.waiting[i] = False
            await run._invoke_failed(i, StepTimeoutError(f'Step "{run.handlers[i].name}" exceeded its timeout of '
                                                          f"{opts.timeout} seconds."), timed_out=TimedOut(False))
            dirty.add(i)
        elif (reason in ("awaiting_retry", "background") and i is not None and txn.waiting[i]
              and txn.inv_state[i] is StepState.INVOKING
              and (run.reason_attempt is None or run.reason_attempt == txn.attempts[i])):
            # Re-invoke: an awaiting retry is due, or a background step's process stopped before it
            # completed the step (its timer was no longer pushed forward).
            txn.waiting[i] = False
            dirty.add(i)

    # -- writing ----------------------------------------------------------------------------------

    def progress(self) -> str:
        """The stored transaction-wide state (JSON text)."""
        run = self.run
        txn = run.txn
        # What the progress is made of: while none of it changes (most checkpoints), the text is too.
        signature = (txn.failing, txn.comp_failed, txn.started_at, txn.timed_out_at, txn.cancelled_at,
                     txn.has_failed_steps, txn.has_skipped_steps, txn.has_skipped_on_failure_steps,
                     txn.has_waiting_steps, txn.has_reverted_steps, len(txn.errors), len(run.children))
        if signature == self.progress_signature and self.progress_text is not None:
            return self.progress_text
        if self.context_json is None:
            self.context_json = progress_tail(txn, safe_jsonable(run.context, "The run context"))
        # Errors are only ever appended: each is encoded once (its traceback text is the costly part).
        texts = self.error_texts
        errors = txn.errors
        if len(texts) > len(errors):
            texts.clear()
        for failure in errors[len(texts):]:
            texts.append(error_text(failure))
        text = progress_of(txn, self.context_json, f"[{','.join(texts)}]")
        if run.children:  # the nested executions this run started (its finish settles them)
            keys = json.dumps([[k.workflow_id, k.transaction_id, k.run_id] for k in run.children])
            text = f'{text[:-1]},"children":{keys}}}'
        self.progress_signature = signature
        self.progress_text = text
        return text

    async def flush(self, *, release: bool = False, finish: FinishData | None = None) -> None:
        """Write what changed since the last checkpoint, in one commit (fenced by version and owner).

        Parallel steps checkpoint one after the other: each write is fenced on the version the
        previous one produced.
        """
        while self.flushing:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.flush_waiters.append(waiter)
            await waiter
        self.flushing = True
        try:
            await self._flush(release=release, finish=finish)
        finally:
            self.flushing = False
            if self.flush_waiters:
                self._wake_next()

    async def _was_inserted(self) -> bool:
        try:
            return await self.engine.store.get(self.run.key) is not None
        except Exception:  # unknown: taken as not stored (a retry of the same id then gets a conflict)
            return False

    def _wake_next(self) -> None:
        waiter = self.flush_waiters.pop(0)
        if not waiter.done():
            waiter.set_result(None)

    async def _flush(self, *, release: bool, finish: FinishData | None) -> None:
        txn = self.run.txn
        rows = [step_row(txn, i, self.enc_out.get(i), self.enc_comp.get(i)) for i in sorted(self.dirty)]
        self.dirty.clear()
        engine = self.engine
        now = engine.clock.time()
        state = txn.state.value
        pending = self.pending_row
        if pending is not None:
            # A new execution: the row and its first checkpoint go in one commit. A second start
            # with the same transaction id fails here, before any step's code has run.
            pending.state = state
            pending.progress = self.progress()
            pending.updated_at = now
            self.pending_row = None
            try:
                await engine.store.insert(pending, rows, delete_timers=tuple(self.consumed))
            except Exception:
                # "Stored or not" decides what the caller is told (drive() says "kept" only if it
                # is): an insert that raised may still have committed, so the database says.
                if not await self._was_inserted():
                    self.pending_row = pending
                raise
            self.consumed.clear()
            self.stored_state = state
            self.stored_progress = pending.progress
            if not release and finish is None:
                return
            rows = []
        changed = state != self.stored_state or release or finish is not None
        progress = self.progress()
        same_progress = progress == self.stored_progress and not changed
        if same_progress and not rows and not self.consumed:
            return  # nothing to write
        self.version = await engine.store.write(
            self.run.key, engine.owner, self.version, state=state if changed else None,
            progress=None if same_progress else progress, steps=rows,
            lease_until=None if release else now + engine.lease_ttl, finish=finish, now=now,
            delete_timers=tuple(self.consumed))
        self.consumed.clear()
        self.stored_state = state
        self.stored_progress = progress
