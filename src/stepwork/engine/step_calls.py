"""Calling one step: its invoke with conditions, retries and timeouts, or its compensation.

A mixin of :class:`~stepwork.engine.run.Run`: the run loop decides *which* steps run; these
methods run one and record what happened in the transaction. Where a stored run differs (a
checkpoint around the call, a retry that waits on a durable timer, an async step that waits for
its completion), they ask the run's checkpointer.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stepwork.engine.context import StepContext
from stepwork.engine.faults import fault_point
from stepwork.engine.log_fields import log_step_failure
from stepwork.engine.persistence import encode_step_values
from stepwork.engine.run_events import emit
from stepwork.engine.step_response import StepResponse, is_skip
from stepwork.engine.values import clone, ensure, lazy_value
from stepwork.errors import PermanentStepFailure, StepTimeoutError, TransactionTimeoutError
from stepwork.orchestration.retry import retry_delay
from stepwork.orchestration.transaction import FailureOutcome, StepFailure

if TYPE_CHECKING:
    from stepwork.container import Container
    from stepwork.engine.checkpoint import StoredCheckpointer
    from stepwork.engine.compiled import CompiledWorkflow, StepHandler
    from stepwork.orchestration.transaction import Transaction

__all__ = ["GO", "PLAIN", "SKIPPED", "SUSPEND", "WAITING", "StepCalls", "TimedOut"]

# Result types that are certainly not awaitable: skips inspect.isawaitable on the hot path.
PLAIN: frozenset[type] = frozenset({int, float, str, bool, type(None), dict, list, tuple, bytes, StepResponse})
SKIPPED: Any = object()   # _succeeded's answer for a skip
WAITING: Any = object()   # a step (or compensation) now waits for a completion from outside
GO: Any = object()        # _before_retry: attempt now
SUSPEND: Any = object()   # the run stops here until a timer, a completion or a new run call wakes it
DEADLINE: Any = object()  # _before_retry: the workflow timed out while waiting
_RETRY = FailureOutcome.RETRY


class TimedOut(Exception):
    """A step exceeded its own timeout or the workflow's."""

    def __init__(self, transaction: bool, output: Any = None, compensate_input: Any = None,
                 has_output: bool = False) -> None:
        super().__init__("timeout")
        self.transaction = transaction
        self.output = output
        self.compensate_input = compensate_input
        self.has_output = has_output


class StepCalls:
    """Invoking and compensating one step of a run (mixed into ``Run``)."""

    __slots__ = ()

    # What the run provides (see Run): it is also the value source of resolvers, the RunInfo of
    # StepContext and the emitter of events.
    workflow_id: str
    transaction_id: str
    run_id: str
    context: dict[str, Any]
    event_group_id: str
    parent_step_idempotency_key: str | None
    payload: Any
    outputs: list[Any]
    txn: Transaction
    handlers: tuple[StepHandler, ...]
    compiled: CompiledWorkflow
    listeners: Any
    cp: StoredCheckpointer | None
    deadline: float | None
    memo: dict[int, Any]
    inflight: dict[int, asyncio.Future[None]] | None
    check_storable: bool
    now: Callable[[], float]

    @property
    def container(self) -> Container:
        """The run's container."""
        raise NotImplementedError

    # -- invoking ---------------------------------------------------------------------------------

    async def _invoke(self, i: int, *, retry: bool = False, resume: bool = False) -> None:
        """Invoke step ``i`` with its conditions, retries and timeouts (the general path).

        ``retry``: a failed attempt came before (its retry wait applies); ``resume``: the step was
        interrupted or its retry is due, so it is attempted now.
        """
        txn = self.txn
        h = self.handlers[i]
        opts = h.step.options
        listeners = self.listeners
        cp = self.cp
        if resume:
            retry = False
        elif not retry and h.conditions:
            try:
                for node in h.conditions:
                    if not await lazy_value(self, node):
                        txn.invoke_skipped(i)
                        return
            except Exception as exc:
                # A condition that raises fails its step at once: retrying the step would skip the
                # question the condition was asking.
                txn.start_invoke(i, self.now())
                await self._invoke_failed(i, exc, permanent=True)
                return
        while True:
            if retry:
                how = await self._before_retry(i)
                if how is SUSPEND:
                    return
                if how is DEADLINE:
                    await self._invoke_failed(i, TransactionTimeoutError(), timed_out=TimedOut(True))
                    if cp is not None:
                        await cp.step_settled(i)
                    return
            retry = True
            attempt = txn.start_invoke(i, self.now())
            if cp is not None:
                await cp.step_started(i)
            if listeners:
                await emit(self, "on_step_begin", step=i)
            try:
                if h.pre:
                    await ensure(self, h.pre)
                ctx = StepContext(self, h.name, "invoke", attempt)
                r = await self._call(h, h.read_input(self), ctx)
                output = self._succeeded(i, r)
            except TimedOut as t:
                error: BaseException = TransactionTimeoutError() if t.transaction else StepTimeoutError(
                    f'Step "{h.name}" exceeded its timeout of {opts.timeout} seconds.')
                await self._invoke_failed(i, error, timed_out=t)
                if cp is not None:
                    await cp.step_settled(i)
                return
            except Exception as exc:
                if await self._invoke_failed(i, exc) is _RETRY:
                    continue
                if cp is not None:
                    await cp.step_settled(i)
                return
            if cp is not None:
                await cp.step_settled(i)
            if listeners:
                if output is WAITING:
                    await emit(self, "on_step_awaiting", step=i)
                elif output is not SKIPPED:
                    await emit(self, "on_step_success", step=i, response=output)
            return

    async def _call(self, h: StepHandler, value: Any, ctx: StepContext) -> Any:
        """Call the invoke function, enforcing the step's timeout and the workflow's."""
        opts = h.step.options
        cp = self.cp
        if cp is not None and opts.is_async and opts.background_execution:
            # The invoke runs in the background; its return value completes the step later.
            await cp.start_background(h, value, ctx)
            return WAITING
        loop = asyncio.get_running_loop()
        started = loop.time()
        limit = None if opts.timeout is None else started + opts.timeout
        deadline = self.deadline
        if deadline is not None and (limit is None or deadline < limit):
            limit = deadline
        if opts.thread and not h.invoke_is_coro:
            r = await asyncio.to_thread(h.invoke, value, ctx)
        else:
            r = h.invoke(value, ctx)
        if r.__class__ not in PLAIN and inspect.isawaitable(r):
            if limit is None:
                return await r
            cm = asyncio.timeout_at(limit)
            try:
                async with cm:
                    r = await r
            except TimeoutError:
                if cm.expired():
                    raise TimedOut(deadline is not None and loop.time() >= deadline) from None
                raise
            if not cm.expired():
                return r
            # The step swallowed its cancellation and returned: it still ran out of time.
        elif limit is None or loop.time() <= limit:
            return r
        # A plain function cannot be interrupted: it is marked timed out when it returns late.
        output, comp = (r.output, r.compensate_input) if isinstance(r, StepResponse) else (r, r)
        raise TimedOut(deadline is not None and loop.time() >= deadline, output, comp, True)

    def _succeeded(self, i: int, r: Any) -> Any:
        """Record step ``i``'s return value ``r``; return its output (``SKIPPED``, ``WAITING``)."""
        txn = self.txn
        cp = self.cp
        if cp is not None:
            fault_point("step.returned", self.handlers[i].name)
        if r is WAITING:
            txn.invoke_waiting(i)
            return WAITING
        if isinstance(r, StepResponse):
            if is_skip(r):
                txn.invoke_skipped(i)
                return SKIPPED
            h = self.handlers[i]
            if h.step.options.is_async and not h.async_in_definition:
                # Made async at its call site: it waits for set_step_success whatever it returns
                # (Medusa infers completion by a StepResponse only from the step's own definition).
                txn.invoke_waiting(i)
                return WAITING
            output, comp = r.output, r.compensate_input
        else:
            opts = self.handlers[i].step.options
            if opts.is_async and not opts.background_execution:
                # An async step's plain return value does not complete it: set_step_success does.
                txn.invoke_waiting(i)
                return WAITING
            output = comp = r
        if cp is not None:
            cp.encode(i, output, comp)
        elif self.check_storable:
            self._check_storable(i, output, comp)
        txn.invoke_succeeded(i, output, comp)
        return output

    def _check_storable(self, i: int, output: Any, comp: Any) -> None:
        """A stored workflow run in memory refuses what the engine could not store, as the engine
        would (tests must not pass where production rolls back)."""
        encode_step_values(self.handlers[i].name, self.compiled.plan.save_response[i], output, comp)

    async def _invoke_failed(self, i: int, error: BaseException, *, timed_out: TimedOut | None = None,
                             permanent: bool = False) -> FailureOutcome:
        txn = self.txn
        _note_step(error, self.handlers[i].name, "invoke")
        if timed_out is not None:
            if timed_out.transaction and txn.timed_out_at is None:
                txn.timed_out_at = self.now()
                if self.listeners:
                    await emit(self, "on_timeout")
            outcome = txn.invoke_failed(
                i, error, timeout=not timed_out.transaction, transaction_timeout=timed_out.transaction,
                compensate_input=timed_out.compensate_input, output=timed_out.output,
                has_output=timed_out.has_output)
        elif isinstance(error, PermanentStepFailure):
            outcome = txn.invoke_failed(i, error, permanent=True, compensate_input=error.compensate_input)
        else:
            outcome = txn.invoke_failed(i, error, permanent=permanent)
        log_step_failure(self, i, "invoke", error, outcome)  # (a record only if its level is enabled)
        if self.listeners and outcome is not _RETRY:
            await emit(self, "on_step_failure", step=i, errors=[txn.errors[-1].to_dict()])
        return outcome

    async def _transaction_timed_out(self) -> None:
        txn = self.txn
        txn.timed_out_at = self.now()
        txn.failing = True
        txn.errors.append(StepFailure(None, "invoke", TransactionTimeoutError()))
        if self.listeners:
            await emit(self, "on_timeout")

    def retry_wait(self, i: int) -> float:
        """The wait before the next attempt of step ``i`` (its backoff and jitter applied)."""
        failures = max(self.txn.failures[i], 1)
        return retry_delay(self.handlers[i].step.options, failures, random.random)

    async def _before_retry(self, i: int) -> object:
        """Before another attempt of step ``i``: in memory, wait here (``GO``, or ``DEADLINE`` if the
        workflow timed out first); a stored run waits on a durable timer instead (``SUSPEND``)."""
        opts = self.handlers[i].step.options
        cp = self.cp
        if cp is not None:
            if not opts.auto_retry:
                cp.dirty.add(i)
                return SUSPEND  # the next attempt happens when the workflow is run again with this id
            delay = self.retry_wait(i)
            if delay > 0:
                await cp.arm_retry(i, delay, "retry")
                return SUSPEND
            return GO
        delay = self.retry_wait(i)
        if delay > 0 and not await self._sleep(delay):
            return DEADLINE
        return GO

    async def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` (a retry wait); False if the workflow deadline came first."""
        deadline = self.deadline
        if deadline is None:
            await asyncio.sleep(seconds)
            return True
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= seconds:
            await asyncio.sleep(max(remaining, 0))
            return False
        await asyncio.sleep(seconds)
        return True

    # -- compensating -----------------------------------------------------------------------------

    async def _compensate_step(self, i: int, *, retry: bool = False) -> None:
        txn = self.txn
        h = self.handlers[i]
        fn = h.compensate
        cp = self.cp
        if fn is None:
            txn.compensate_skipped(i)
            if cp is not None:
                await cp.step_settled(i)
            return
        listeners = self.listeners
        while True:
            if retry and await self._before_compensate_retry(i) is SUSPEND:
                return
            retry = True
            attempt = txn.start_compensate(i)
            if cp is not None:
                await cp.step_started(i)
            if listeners:
                await emit(self, "on_step_begin", step=i)
            try:
                ctx = StepContext(self, h.name, "compensate", attempt)
                value = clone(txn.comp_input[i])
                if h.comp_convert is not None:
                    value = h.comp_convert(value)
                r = fn(value, ctx)
                if r.__class__ not in PLAIN and inspect.isawaitable(r):
                    r = await r
                output = self._compensated(i, r)
            except Exception as exc:
                _note_step(exc, h.name, "compensate")
                outcome = txn.compensate_failed(i, exc)
                log_step_failure(self, i, "compensate", exc, outcome)
                if outcome is _RETRY:
                    continue
                if cp is not None:
                    await cp.step_settled(i)
                if listeners:
                    await emit(self, "on_compensate_step_failure", step=i,
                               errors=[txn.errors[-1].to_dict()])
                return
            if cp is not None:
                await cp.step_settled(i)
            if listeners and output is not WAITING:
                await emit(self, "on_compensate_step_success", step=i, response=output)
            return

    def _compensated(self, i: int, r: Any) -> Any:
        """Record step ``i``'s compensation result ``r``; return its output (``WAITING``)."""
        if self.cp is not None:
            fault_point("compensation.returned", self.handlers[i].name)
        h = self.handlers[i]
        if h.step.options.compensate_async and h.kind != "nested":
            # (A nested workflow's revert has finished when it returns: nothing to wait for.)
            self.txn.compensate_waiting(i)
            return WAITING
        output = r.output if isinstance(r, StepResponse) else r
        self.txn.compensate_succeeded(i, output)
        return output

    async def _before_compensate_retry(self, i: int) -> object:
        """Before another compensation attempt of step ``i``: its retry wait, as for the invoke."""
        delay = self.retry_wait(i)
        if delay <= 0:
            return GO
        cp = self.cp
        if cp is not None:
            await cp.arm_retry(i, delay, "compensate_retry")
            return SUSPEND
        await asyncio.sleep(delay)
        return GO


def _note_step(error: BaseException, step: str, action: str) -> None:
    """Name the step on its exception (a note: the exception's type stays what the step raised)."""
    note = f'raised by step "{step}" ({action})'
    notes = getattr(error, "__notes__", None)
    if notes is None or note not in notes:
        # An exception class that refuses notes keeps its message as it is.
        with contextlib.suppress(Exception):
            error.add_note(note)
