"""The run: one execution being driven, and the one loop that drives it.

Every execution goes through :meth:`Run.drive`, in memory or stored, fresh or resumed: what
differs is the checkpointer it is given (``None`` in memory: nothing to write) and the nested-run
backend (children kept in memory, or stored). The loop starts from whatever state the
transaction is in, runs the stages forward, compensates when a failure asks for it, and stops
where something must be waited for (a stored run then writes where it is and gives its lease
back).

Sequential plain-function steps of a run in memory are called inline (no task per step: a task
per step alone costs more than the rest of the step together); only parallel stages use
``asyncio.gather``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stepwork.container import Container
from stepwork.engine import patches
from stepwork.engine.context import StepContext
from stepwork.engine.fast_paths import FastPaths
from stepwork.engine.log_fields import log_step_failure
from stepwork.engine.nesting import NestedCalls, NestedRuns
from stepwork.engine.run_events import emit
from stepwork.engine.step_calls import PLAIN, SUSPEND
from stepwork.engine.step_response import _SKIP, StepResponse
from stepwork.engine.subscriptions import DRIVE_END
from stepwork.engine.values import clone, ensure
from stepwork.errors import StepworkError
from stepwork.orchestration.states import FORWARD_STEP_STATES, StepState, StepStatus, TransactionState
from stepwork.orchestration.transaction import FailureOutcome, Transaction
from stepwork.storage.base import ExecutionKey

if TYPE_CHECKING:
    from stepwork.engine.checkpoint import StoredCheckpointer
    from stepwork.engine.compiled import CompiledWorkflow, StepHandler

__all__ = ["Run"]

_X = TransactionState
_NOT_STARTED = StepState.NOT_STARTED
_RETRY = FailureOutcome.RETRY
_ALL_DONE: Any = object()
_CONTINUE: Any = object()


class Run(FastPaths, NestedCalls):
    """One execution being driven: the transaction, its resolver state and the run-wide facts."""

    __slots__ = (
        "_container", "_key", "after_resume", "check_storable", "children", "compiled", "context", "cp", "deadline",
        "event_group_id", "fast", "handlers", "inflight", "inline", "inline_calls", "listeners", "memo",
        "nested", "now", "outputs", "parent_step_idempotency_key", "payload", "reason", "reason_attempt",
        "reason_step", "run_id", "transaction_id", "txn", "workflow_id",
    )

    def __init__(self, compiled: CompiledWorkflow, payload: Any, *, transaction_id: str, run_id: str,
                 container: Container | None, context: dict[str, Any], event_group_id: str,
                 parent_step_idempotency_key: str | None = None, listeners: Any = None,
                 nested: NestedRuns | None = None, now: Callable[[], float] = time.time) -> None:
        self.compiled = compiled
        self.handlers: tuple[StepHandler, ...] = compiled.handlers
        patcher = patches.current()
        if patcher is not None:  # a test changed what some steps do (stepwork.testing)
            self.handlers = patcher(compiled, transaction_id) or compiled.handlers
        self.workflow_id = compiled.name
        self.transaction_id = transaction_id
        self.run_id = run_id
        self._key: ExecutionKey | None = None
        self._container = container
        self.context = context
        self.event_group_id = event_group_id
        self.parent_step_idempotency_key = parent_step_idempotency_key
        self.listeners: Any = listeners or {}
        metadata: dict[str, Any] = {"eventGroupId": event_group_id}
        if parent_step_idempotency_key is not None:
            metadata["parentStepIdempotencyKey"] = parent_step_idempotency_key
        self.txn = Transaction(compiled.plan, transaction_id, run_id, payload, metadata)
        self.payload = payload
        self.outputs = self.txn.outputs
        self.memo: dict[int, Any] = {}
        self.inflight: dict[int, asyncio.Future[None]] | None = None
        self.deadline: float | None = None
        self.now = now  # the wall clock (an engine's clock for engine runs)
        self.cp: StoredCheckpointer | None = None
        self.nested = nested
        self.children: list[ExecutionKey] = []  # the nested executions this run started
        self.check_storable = False  # a stored workflow run in memory refuses what cannot be stored
        self.fast = False  # in memory, nothing around the calls: the inline paths of fast_paths.py
        self.inline_calls = False  # a single fast step may be called inline (stored runs too)
        self.after_resume: list[tuple[str, dict[str, Any]]] = []  # events of what resumed it
        self.reason: str | None = None       # why a stored run is resumed: "run", "recovery", a timer kind
        self.reason_step: int | None = None  # the step a timer was for
        self.reason_attempt: int | None = None  # and the attempt it was armed for
        self.inline = False  # driven from inside its parent's step call (a nested run)

    @property
    def container(self) -> Container:
        """The run's container (an empty one, made on first use, when none was given)."""
        if self._container is None:
            self._container = Container()
        return self._container

    @property
    def key(self) -> ExecutionKey:
        """The execution's key (made when first needed: a run in memory rarely needs it)."""
        key = self._key
        if key is None:
            key = self._key = ExecutionKey(self.workflow_id, self.transaction_id, self.run_id)
        return key

    @property
    def finished(self) -> bool:
        """True once the transaction reached ``done``, ``reverted`` or ``failed``."""
        return self.txn.is_finished

    @property
    def reverted(self) -> bool:
        """True once the transaction ended ``reverted``."""
        return self.txn.state is TransactionState.REVERTED

    # -- the loop ---------------------------------------------------------------------------------

    async def drive(self) -> None:
        """Advance as far as possible: to a finished state, or to a point that waits for something."""
        failure: BaseException | None = None
        try:
            txn = self.txn
            cp = self.cp
            listeners = self.listeners
            if txn.state is _X.NOT_STARTED:
                txn.begin(self.now())
                timeout = self.compiled.plan.options.timeout
                if timeout is not None and cp is not None:
                    await cp.arm(None, timeout, "transaction_timeout")
                if listeners:
                    await emit(self, "on_begin")
            elif listeners:
                await emit(self, "on_resume")
                for event, fields in self.after_resume:  # what resumed it: a completion from outside
                    await emit(self, event, **fields)
            if self.after_resume:
                self.after_resume = []
            if self.compiled.plan.options.timeout is not None:
                self._set_deadline()
            self.fast = cp is None and not listeners and self.deadline is None
            self.inline_calls = not listeners and self.deadline is None
            reason = self.reason
            self.reason = None
            if reason is not None and cp is not None:
                await cp.apply_timer(reason, self.reason_step)
            while True:
                state = txn.state
                if state is _X.INVOKING and not txn.failing:
                    outcome = await self._advance(reason)
                    reason = None
                    if outcome is SUSPEND:
                        if cp is not None:
                            await cp.suspend()
                        return
                    if outcome is _ALL_DONE:
                        txn.finish_invoking()
                        break
                    continue
                if state is _X.INVOKING:  # a failure asks for compensation
                    # (Not written here: the first compensation's start commits the move with it.)
                    await self.begin_compensation("The workflow is compensating: this waiting step was failed.")
                    continue
                if state is _X.WAITING_TO_COMPENSATE:
                    txn.state = _X.COMPENSATING
                    continue
                if state is _X.COMPENSATING:
                    if await self._advance_compensation() is SUSPEND:
                        if cp is not None:
                            await cp.suspend()
                        return
                    txn.finish_compensating()
                break
            if cp is not None:
                await cp.finished()
        except BaseException as exc:
            failure = exc
            raise
        finally:
            if self.listeners:  # (engine-wide subscribers only: telemetry ends its spans of this drive)
                await self._drive_ended(failure)

    async def _drive_ended(self, failure: BaseException | None) -> None:
        """Tell engine-wide subscribers this process stopped driving the run (finished, waiting, failed)."""
        fn = self.listeners.get(DRIVE_END)
        if fn is None:
            return
        txn = self.txn
        await fn({"event_type": DRIVE_END, "workflow_id": self.workflow_id, "transaction_id": self.transaction_id,
                  "run_id": self.run_id, "state": txn.state.value, "finished": txn.is_finished,
                  "parent_step_idempotency_key": self.parent_step_idempotency_key,
                  "errors": [e.to_dict() for e in txn.errors] if txn.is_finished else [], "failure": failure})

    async def begin_compensation(self, why: str, *, cancel: bool = False) -> None:
        """Start compensating. An async step still waiting for its completion is failed now
        (``not_allowed``, saying ``why``): it is then compensated with the others instead of being
        left running. (Only a stored run can have one.)"""
        txn = self.txn
        cp = self.cp
        if cp is not None:
            for j in txn.running_steps():
                if txn.waiting[j]:
                    txn.fail_waiting(j, StepworkError(StepworkError.Types.NOT_ALLOWED, why), permanent=True)
                    cp.dirty.add(j)
        if cancel:
            txn.failing = False
        txn.begin_compensation(self.now(), cancel=cancel)
        if self.listeners:
            await emit(self, "on_compensate_begin")

    def _set_deadline(self) -> None:
        timeout = self.compiled.plan.options.timeout
        if timeout is not None and self.txn.started_at is not None:
            remaining = self.txn.started_at + timeout - self.now()
            self.deadline = asyncio.get_running_loop().time() + remaining

    def _settled(self, stage: tuple[int, ...]) -> bool:
        inv = self.txn.inv_state
        return all(inv[i] in FORWARD_STEP_STATES for i in stage)

    def _runnable(self, i: int, reason: str | None) -> bool:
        """Whether a step of the current stage must be invoked now on resumption."""
        txn = self.txn
        state = txn.inv_state[i]
        if state is _NOT_STARTED:
            return True
        if state is not StepState.INVOKING or txn.waiting[i]:
            return False
        if txn.inv_status[i] is StepStatus.TEMP_FAILURE:
            if not self.handlers[i].step.options.auto_retry:
                return reason == "run"
            due = txn.retry_at[i]
            return due is None or due <= self.now() + 0.001
        return True  # it was running when its process stopped: invoke it again (same idempotency key)

    async def _run_members(self, members: list[int], *, resume: bool) -> None:
        if len(members) == 1:
            await self._invoke(members[0], resume=resume)
        elif members:
            await asyncio.gather(*[self._invoke(i, resume=resume) for i in members])

    async def _advance(self, reason: str | None) -> Any:
        """Settle the current stage if it was interrupted, then run the next stages."""
        txn = self.txn
        stages = txn.plan.stages
        if txn.cursor > 0:
            current = stages[txn.cursor - 1]
            if not self._settled(current):
                await self._run_members([i for i in current if self._runnable(i, reason)], resume=True)
                if txn.failing:
                    return _CONTINUE
                if not self._settled(current):
                    return SUSPEND
        inv_state = txn.inv_state
        handlers = self.handlers
        fast = self.fast
        inline_calls = self.inline_calls
        check_storable = self.check_storable
        deadline = self.deadline
        n_stages = len(stages)
        while txn.cursor < n_stages:
            if deadline is not None and asyncio.get_running_loop().time() >= deadline:
                await self._transaction_timed_out()
                return _CONTINUE
            stage = stages[txn.cursor]
            txn.cursor += 1
            if len(stage) == 1:
                i = stage[0]
                if inv_state[i] is not _NOT_STARTED:
                    continue  # skipped by an earlier failure
                h = handlers[i]
                if fast and h.fast:
                    # The hot path in memory, written out here: a call and an await less per step.
                    attempt = txn.start_invoke(i, self.now())
                    try:
                        f1 = h.invoke1
                        if f1 is not None:
                            r = f1(h.read_input(self))
                        else:
                            r = h.invoke(h.read_input(self), StepContext(self, h.name, "invoke", attempt))
                        if r.__class__ not in PLAIN and inspect.isawaitable(r):
                            r = await r
                    except Exception as exc:
                        outcome = await self._invoke_failed(i, exc)
                    else:
                        if not check_storable:
                            cls = r.__class__
                            if cls is StepResponse:
                                if r is not _SKIP:
                                    txn.invoke_succeeded(i, r.output, r.compensate_input)
                                    continue
                            elif cls in PLAIN:
                                txn.invoke_succeeded(i, r, r)
                                continue
                        try:
                            self._succeeded(i, r)
                            continue
                        except StepworkError as exc:  # a value a stored workflow could not store
                            outcome = await self._invoke_failed(i, exc)
                    if outcome is _RETRY:  # retried outside the except block: no chaining to this error
                        await self._invoke(i, retry=True)
                elif inline_calls and h.fast:
                    if await self._invoke_inline(i, h):
                        continue
                else:
                    await self._invoke(i)
            else:
                members = [i for i in stage if inv_state[i] is _NOT_STARTED]
                if fast and all(handlers[i].fast and not handlers[i].step.options.max_retries for i in members):
                    await self._parallel_fast(members)
                else:
                    await self._run_members(members, resume=False)
            if txn.failing:
                return _CONTINUE
            if not self._settled(stage):
                return SUSPEND
        return _ALL_DONE

    def _comp_runnable(self, i: int) -> bool:
        txn = self.txn
        if txn.comp_status[i] is StepStatus.TEMP_FAILURE:
            due = txn.retry_at[i]
            return due is None or due <= self.now() + 0.001
        return True

    async def _advance_compensation(self) -> Any:
        """Compensate what needs it, newest stage first; the steps of a stage together."""
        txn = self.txn
        handlers = self.handlers
        fast = self.fast
        stored = self.cp is not None
        todo: tuple[int, ...]
        for stage in reversed(txn.plan.stages[: txn.cursor]):
            if len(stage) == 1:
                i = stage[0]
                if not txn.needs_compensation(i) or (stored and not self._comp_runnable(i)):
                    if stored and not txn.compensation_settled(i):
                        return SUSPEND
                    continue
                todo = stage
            else:
                todo = tuple(i for i in stage if txn.needs_compensation(i) and (not stored or self._comp_runnable(i)))
            if len(todo) == 1:
                i = todo[0]
                h = handlers[i]
                fn = h.compensate
                if fast and fn is not None and not h.compensate_is_coro and h.comp_convert is None:
                    # The hot path in memory: a plain compensation function, called inline.
                    attempt = txn.start_compensate(i)
                    try:
                        f1 = h.compensate1
                        if f1 is not None:
                            r = f1(clone(txn.comp_input[i]))
                        else:
                            r = fn(clone(txn.comp_input[i]), StepContext(self, h.name, "compensate", attempt))
                        if r.__class__ not in PLAIN and inspect.isawaitable(r):
                            r = await r
                    except Exception as exc:  # every compensation error is recorded
                        outcome = txn.compensate_failed(i, exc)
                        log_step_failure(self, i, "compensate", exc, outcome)
                    else:
                        txn.compensate_succeeded(i, r.output if isinstance(r, StepResponse) else r)
                        continue
                    if outcome is _RETRY:  # outside the except block: no chaining to this error
                        await self._compensate_step(i, retry=True)
                else:
                    await self._compensate_step(i)
            elif todo:
                await asyncio.gather(*[self._compensate_step(i) for i in todo])
            # A run in memory never leaves a compensation unsettled (no async compensation there).
            if stored and not all(txn.compensation_settled(i) for i in stage):
                return SUSPEND
        return _CONTINUE

    async def revert(self) -> None:
        """Compensate every completed step of this (finished or running) execution: cancel."""
        await self.begin_compensation("The transaction was cancelled.", cancel=True)
        await self.drive()

    # -- results ----------------------------------------------------------------------------------

    async def resolve_result(self, result_from: str | None) -> Any:
        """The workflow's result: the composer's value, or the output of step ``result_from``."""
        if result_from is not None:
            return self.outputs[self.txn.plan.step(result_from).index]
        compiled = self.compiled
        if compiled.result_pre:
            await ensure(self, compiled.result_pre)
        return compiled.read_result(self)
