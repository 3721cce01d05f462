"""A run whose every step transition is checkpointed to a store, and that can stop and resume.

A :class:`DurableRun` drives the same state machine as the in-memory run, with these differences:
each step start is a checkpoint (committed before the step's code runs, together with the
previous step's result: one commit per step boundary); an async step that returned waits for its
completion; a retry interval or ``auto_retry: False`` suspends the step (a durable timer row, or a
manual resume); and the drive loop can start again from any stored state: steps that were
running when a process died are invoked again, completed ones never are.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, ClassVar

from stepwork.engine.compiled import CompiledWorkflow, StepHandler
from stepwork.engine.context import StepContext
from stepwork.engine.faults import fault_point
from stepwork.engine.persistence import progress_of, progress_tail, safe_jsonable, step_row
from stepwork.engine.runner import _GO, _SKIPPED, _SUSPEND, _WAITING, Run, _TimedOut
from stepwork.engine.step_response import StepResponse, is_skip
from stepwork.errors import StepTimeoutError, StepworkError, TransactionTimeoutError
from stepwork.orchestration.states import FORWARD_STEP_STATES, StepState, StepStatus, TransactionState
from stepwork.orchestration.transaction import StepFailure
from stepwork.storage.base import ExecutionKey, ExecutionRow, FinishData, TimerRow
from stepwork.storage.serialization import encode

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine

__all__ = ["DurableRun"]

_X = TransactionState
_ALL_DONE: Any = object()
_BACKGROUND: Any = object()
WAITING_NESTED: Any = object()  # run_child's answer when the nested workflow waits
_CONTINUE: Any = object()


class DurableRun(Run):
    """A run checkpointed to the engine's store; resumable from any stored state."""

    FAST: ClassVar[bool] = False

    __slots__ = ("after_resume", "child_keys", "context_json", "dirty", "enc_comp", "enc_out", "engine",
                 "execution_id", "flush_lock", "inline", "key", "pending_row", "reason", "reason_step",
                 "retention_time", "stored_progress", "stored_state", "version")

    def __init__(self, engine: WorkflowEngine, compiled: CompiledWorkflow, payload: Any, *, transaction_id: str,
                 run_id: str, context: dict[str, Any], event_group_id: str, execution_id: str,
                 parent_step_idempotency_key: str | None = None, listeners: Any = None) -> None:
        super().__init__(compiled, payload, transaction_id=transaction_id, run_id=run_id,
                         container=engine.container, context=context, event_group_id=event_group_id,
                         parent_step_idempotency_key=parent_step_idempotency_key, listeners=listeners)
        self.engine = engine
        self.now = engine.clock.time
        self.flush_lock: asyncio.Lock | None = None
        self.key = ExecutionKey(compiled.name, transaction_id, run_id)
        self.execution_id = execution_id
        self.version = 0
        self.dirty: set[int] = set()
        self.enc_out: dict[int, str | None] = {}
        self.enc_comp: dict[int, str | None] = {}
        self.retention_time = compiled.plan.options.retention_time
        self.context_json: Any = None
        self.pending_row: ExecutionRow | None = None  # a new execution, inserted by its first checkpoint
        self.stored_progress: str | None = None  # the progress text written last
        self.after_resume: list[tuple[str, dict[str, Any]]] = []
        self.inline = False  # driven from inside its parent's step call (a nested run)
        self.child_keys: list[ExecutionKey] = []
        self.stored_state = TransactionState.NOT_STARTED.value
        self.reason: str | None = None      # why the run is resumed: "run", "recovery", a timer kind
        self.reason_step: int | None = None  # the step a timer was for

    # -- checkpoints ------------------------------------------------------------------------------

    def progress(self) -> str:
        """The stored transaction-wide state (JSON text)."""
        if self.context_json is None:
            self.context_json = progress_tail(self.txn, safe_jsonable(self.context, "The run context"))
        text = progress_of(self.txn, self.context_json)
        if self.child_keys:  # the nested executions this run started (its finish settles them)
            keys = json.dumps([[k.workflow_id, k.transaction_id, k.run_id] for k in self.child_keys])
            text = f'{text[:-1]},"children":{keys}}}'
        return text

    async def flush(self, *, release: bool = False, finish: FinishData | None = None) -> None:
        """Write what changed since the last checkpoint, in one commit (fenced by version and owner).

        Parallel steps checkpoint one after the other: each write is fenced on the version the
        previous one produced.
        """
        if self.flush_lock is None:
            self.flush_lock = asyncio.Lock()
        async with self.flush_lock:
            await self._flush(release=release, finish=finish)

    async def _flush(self, *, release: bool, finish: FinishData | None) -> None:
        txn = self.txn
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
            await engine.store.insert(pending, rows)
            self.stored_state = state
            self.stored_progress = pending.progress
            if not release and finish is None:
                return
            rows = []
        changed = state != self.stored_state or release or finish is not None
        progress = self.progress()
        same_progress = progress == self.stored_progress and not changed
        if same_progress and not rows:
            return  # nothing to write
        self.version = await engine.store.write(
            self.key, engine.owner, self.version, state=state if changed else None,
            progress=None if same_progress else progress, steps=rows,
            lease_until=None if release else now + engine.lease_ttl, finish=finish, now=now)
        self.stored_state = state
        self.stored_progress = progress

    async def _step_started(self, i: int) -> None:
        name = self.handlers[i].name
        fault_point("checkpoint.before", name)
        await self._checkpoint_start(i)
        fault_point("checkpoint.after", name)

    async def _checkpoint_start(self, i: int) -> None:
        self.dirty.add(i)
        txn = self.txn
        opts = self.handlers[i].step.options
        if opts.timeout is not None and txn.attempts[i] == 1 and txn.inv_state[i] is StepState.INVOKING and (
                opts.is_async or opts.retry_interval or not opts.auto_retry):
            # The step may wait outside any call (for its completion, a retry): a durable timer ends it.
            await self._arm(i, opts.timeout, "step_timeout")
        await self.flush()

    async def _step_settled(self, i: int) -> None:
        self.dirty.add(i)
        txn = self.txn
        if txn.waiting[i] and txn.inv_state[i] is StepState.INVOKING:
            opts = self.handlers[i].step.options
            interval = opts.retry_interval_awaiting
            cap = opts.max_awaiting_retries
            if interval and (cap is None or txn.attempts[i] < cap):
                await self._arm(i, interval, "awaiting_retry")
        if len(self.compiled.plan.stages[self.compiled.plan.steps[i].stage]) > 1:
            await self.flush()  # a parallel sibling may run on for long: keep this result safe now

    # -- results and suspensions ------------------------------------------------------------------

    async def _call(self, h: StepHandler, value: Any, ctx: StepContext) -> Any:
        opts = h.step.options
        if opts.is_async and opts.background_execution:
            # The invoke runs in the background; its return value completes the step later.
            await self.engine.start_background(self, h, value, ctx)
            return _BACKGROUND
        return await super()._call(h, value, ctx)

    def _succeeded(self, i: int, r: Any) -> Any:
        h = self.handlers[i]
        fault_point("step.returned", h.name)
        opts = h.step.options
        if r is _BACKGROUND or r is WAITING_NESTED:
            self.txn.invoke_waiting(i)
            return _WAITING
        if isinstance(r, StepResponse):
            if is_skip(r):
                self.txn.invoke_skipped(i)
                return _SKIPPED
            output, comp = r.output, r.compensate_input
        else:
            if opts.is_async and not opts.background_execution:
                self.txn.invoke_waiting(i)
                return _WAITING
            output = comp = r
        self._encode(i, output, comp)
        self.txn.invoke_succeeded(i, output, comp)
        return output

    def _encode(self, i: int, output: Any, comp: Any) -> None:
        """Encode a step's values now, so a value that cannot be stored fails the step (it is raised
        inside the step's error handling) before anything is written."""
        name = self.handlers[i].name
        save = self.compiled.plan.save_response[i]
        self.enc_out[i] = encode(output, f'The output of step "{name}"') if save and output is not None else None
        self.enc_comp[i] = None if comp is None else encode(comp, f'The compensation input of step "{name}"')

    def _compensated(self, i: int, r: Any) -> Any:
        fault_point("compensation.returned", self.handlers[i].name)
        if self.handlers[i].step.options.compensate_async:
            self.txn.compensate_waiting(i)
            return _WAITING
        return super()._compensated(i, r)

    async def _before_retry(self, i: int) -> object:
        opts = self.handlers[i].step.options
        if not opts.auto_retry:
            self.dirty.add(i)
            return _SUSPEND  # the next attempt happens when the workflow is run again with this id
        if opts.retry_interval:
            await self._arm_retry(i, opts.retry_interval, "retry")
            return _SUSPEND
        return _GO

    async def _before_compensate_retry(self, i: int) -> object:
        interval = self.handlers[i].step.options.retry_interval
        if interval:
            await self._arm_retry(i, interval, "compensate_retry")
            return _SUSPEND
        return _GO

    async def _arm_retry(self, i: int, interval: float, kind: str) -> None:
        self.txn.retry_at[i] = await self._arm(i, interval, kind)
        self.dirty.add(i)

    async def _arm(self, i: int | None, delay: float, kind: str) -> float:
        """A durable timer ``kind`` for step ``i`` in ``delay`` seconds; its id makes it unique per attempt."""
        engine = self.engine
        due = engine.clock.time() + delay
        attempt = self.txn.attempts[i] if i is not None else 0
        k = self.key
        await engine.store.add_timer(TimerRow(f"{kind}:{k.workflow_id}:{k.transaction_id}:{k.run_id}:{i}:{attempt}",
                                              k.workflow_id, k.transaction_id, k.run_id, kind, due, i))
        return due

    # -- driving ----------------------------------------------------------------------------------

    async def drive(self) -> None:
        """Advance as far as possible: to a finished state, or to a point that waits for something."""
        txn = self.txn
        engine = self.engine
        if txn.state is _X.NOT_STARTED:
            txn.begin(engine.clock.time())
            timeout = self.compiled.plan.options.timeout
            if timeout is not None:
                await self._arm(None, timeout, "transaction_timeout")
            if self.listeners:
                await self._emit("on_begin")
        elif self.listeners:
            await self._emit("on_resume")
            for event, fields in self.after_resume:  # what resumed it: a completion from outside
                await self._emit(event, **fields)
        self.after_resume = []
        self._set_deadline()
        reason = self.reason
        self.reason = None
        await self._apply_timer(reason, self.reason_step)
        while True:
            state = txn.state
            if state is _X.INVOKING and not txn.failing:
                outcome = await self._advance(reason)
                reason = None
                if outcome is _SUSPEND:
                    await self.flush(release=True)
                    return
                if outcome is _ALL_DONE:
                    txn.finish_invoking()
                    break
                continue
            if state is _X.INVOKING:  # a failure asks for compensation
                # An async sibling still waiting for its completion is failed now (as cancel does):
                # it is then compensated with the others instead of being left running.
                for j in txn.running_steps():
                    if txn.waiting[j]:
                        txn.fail_waiting(j, StepworkError(
                            StepworkError.Types.NOT_ALLOWED,
                            "The workflow is compensating: this waiting step was failed."), permanent=True)
                        self.dirty.add(j)
                txn.begin_compensation(engine.clock.time())
                if self.listeners:
                    await self._emit("on_compensate_begin")
                await self.flush()
                continue
            if state is _X.WAITING_TO_COMPENSATE:
                txn.state = _X.COMPENSATING
                continue
            if state is _X.COMPENSATING:
                if await self._advance_compensation(reason) is _SUSPEND:
                    await self.flush(release=True)
                    return
                txn.finish_compensating()
            break
        await self._finish_stored()

    async def _apply_timer(self, reason: str | None, i: int | None) -> None:
        """What a fired timer means before the run goes on."""
        txn = self.txn
        if reason == "transaction_timeout" and txn.state is _X.INVOKING and not txn.failing:
            txn.timed_out_at = self.engine.clock.time()
            if self.listeners:
                await self._emit("on_timeout")
            for j in txn.running_steps():
                txn.waiting[j] = False
                await self._invoke_failed(j, TransactionTimeoutError(), timed_out=_TimedOut(True))
                self.dirty.add(j)
            if not txn.failing:
                txn.failing = True
                txn.errors.append(StepFailure(None, "invoke", TransactionTimeoutError()))
        elif reason == "step_timeout" and i is not None and txn.inv_state[i] is StepState.INVOKING:
            opts = self.handlers[i].step.options
            txn.waiting[i] = False
            await self._invoke_failed(i, StepTimeoutError(f'Step "{self.handlers[i].name}" exceeded its timeout of '
                                                          f"{opts.timeout} seconds."), timed_out=_TimedOut(False))
            self.dirty.add(i)
        elif (reason in ("awaiting_retry", "background") and i is not None and txn.waiting[i]
              and txn.inv_state[i] is StepState.INVOKING):
            # Re-invoke: an awaiting retry is due, or a background step's process stopped before it
            # completed the step (its timer was no longer pushed forward).
            txn.waiting[i] = False  # invoked again now (retry_interval_awaiting)
            self.dirty.add(i)

    def _set_deadline(self) -> None:
        timeout = self.compiled.plan.options.timeout
        if timeout is not None and self.txn.started_at is not None:
            remaining = self.txn.started_at + timeout - self.engine.clock.time()
            self.deadline = asyncio.get_running_loop().time() + remaining

    def _settled(self, stage: tuple[int, ...]) -> bool:
        inv = self.txn.inv_state
        return all(inv[i] in FORWARD_STEP_STATES for i in stage)

    def _runnable(self, i: int, reason: str | None) -> bool:
        """Whether a step of the current stage must be invoked now on resumption."""
        txn = self.txn
        state = txn.inv_state[i]
        if state is StepState.NOT_STARTED:
            return True
        if state is not StepState.INVOKING or txn.waiting[i]:
            return False
        if txn.inv_status[i] is StepStatus.TEMP_FAILURE:
            opts = self.handlers[i].step.options
            if not opts.auto_retry:
                return reason == "run"
            due = txn.retry_at[i]
            return due is None or due <= self.engine.clock.time() + 0.001
        return True  # it was running when its process stopped: invoke it again (same idempotency key)

    async def _run_members(self, members: list[int], *, resume: bool) -> None:
        if len(members) == 1:
            await self._invoke(members[0], resume=resume)
        elif members:
            await asyncio.gather(*[self._invoke(i, resume=resume) for i in members])

    async def _advance(self, reason: str | None) -> Any:
        txn = self.txn
        stages = txn.plan.stages
        if txn.cursor > 0:
            current = stages[txn.cursor - 1]
            if not self._settled(current):
                await self._run_members([i for i in current if self._runnable(i, reason)], resume=True)
                if txn.failing:
                    return _CONTINUE
                if not self._settled(current):
                    return _SUSPEND
        if txn.cursor >= len(stages):
            return _ALL_DONE
        if self.deadline is not None and asyncio.get_running_loop().time() >= self.deadline:
            await self._transaction_timed_out()
            return _CONTINUE
        stage = stages[txn.cursor]
        txn.cursor += 1
        await self._run_members([i for i in stage if txn.inv_state[i] is StepState.NOT_STARTED], resume=False)
        if txn.failing:
            return _CONTINUE
        if not self._settled(stage):
            return _SUSPEND
        return _CONTINUE

    def _comp_runnable(self, i: int) -> bool:
        txn = self.txn
        if txn.comp_status[i] is StepStatus.TEMP_FAILURE:
            due = txn.retry_at[i]
            return due is None or due <= self.engine.clock.time() + 0.001
        return True

    async def _advance_compensation(self, reason: str | None) -> Any:
        txn = self.txn
        for stage in reversed(txn.plan.stages[: txn.cursor]):
            todo = [i for i in stage if txn.needs_compensation(i) and self._comp_runnable(i)]
            if len(todo) == 1:
                await self._compensate_step(todo[0])
            elif todo:
                await asyncio.gather(*[self._compensate_step(i) for i in todo])
            if not all(txn.compensation_settled(i) for i in stage):
                return _SUSPEND
        return _CONTINUE

    async def _finish_stored(self) -> None:
        # The records are assembled on read from the initial ones, the progress and the step rows, so
        # finishing writes no more than any other checkpoint (or deletes, without retention). A nested
        # run is kept while its parent may still revert it: the parent's finish decides.
        nested = self.parent_step_idempotency_key is not None
        await self.flush(finish=FinishData(delete=self.retention_time is None and not nested))
        if self.child_keys:
            await self.engine.store.finish_children(self.child_keys, self.retention_time, self.engine.clock.time())

    # -- nested workflows -------------------------------------------------------------------------

    async def run_child(self, compiled: CompiledWorkflow, value: Any, ctx: StepContext) -> Any:
        return await self.engine.run_nested(self, compiled, value, ctx)

    async def revert_child(self, value: Any, ctx: StepContext) -> None:
        if not isinstance(value, dict):
            # The nested step never completed (its child waited, or failed): find the child it started.
            prefix = f"{ctx.step_name}-{self.transaction_id}"
            mine = [k for k in self.child_keys if k.transaction_id == prefix
                    or k.transaction_id.startswith(prefix + "-attempt-")]
            if not mine:
                return
            key = mine[-1]
            value = {"workflow_id": key.workflow_id, "transaction_id": key.transaction_id, "run_id": key.run_id}
        await self.engine.revert_nested(value)

    def nested_ref(self) -> dict[str, str]:
        """What a parent's step keeps to revert this nested execution."""
        return {"workflow_id": self.key.workflow_id, "transaction_id": self.key.transaction_id,
                "run_id": self.key.run_id}

    # -- after a finish ---------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """True once the transaction reached ``done``, ``reverted`` or ``failed``."""
        return self.txn.is_finished

