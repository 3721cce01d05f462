"""The runner: drives one execution on asyncio, feeding results into the orchestration core.

Sequential plain-function steps are called inline (no task per step: a task per step alone costs
more than the rest of the step together); coroutine steps are awaited directly; only
``parallelize`` groups use ``asyncio.gather``. Timeouts use the loop's monotonic clock.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from stepwork.container import Container
from stepwork.engine import patches
from stepwork.engine.compiled import CompiledWorkflow, StepHandler
from stepwork.engine.context import StepContext
from stepwork.engine.ids import new_ulid
from stepwork.engine.results import WorkflowResult
from stepwork.engine.step_response import _SKIP as _SKIP_MARKER
from stepwork.engine.step_response import StepResponse, is_skip
from stepwork.engine.values import LazyNode, clone
from stepwork.errors import PermanentStepFailure, StepTimeoutError, StepworkError, TransactionTimeoutError
from stepwork.orchestration.execution_view import build_step_record
from stepwork.orchestration.states import StepState, TransactionState
from stepwork.orchestration.transaction import FailureOutcome, StepFailure, Transaction

__all__ = ["EVENT_TYPES", "Run", "execute"]

logger = logging.getLogger("stepwork.engine")

EVENT_TYPES = frozenset({
    "on_begin", "on_resume", "on_step_begin", "on_step_success", "on_step_failure", "on_step_awaiting",
    "on_compensate_begin", "on_compensate_step_success", "on_compensate_step_failure", "on_timeout",
    "on_finish",
})

# Result types that are certainly not awaitable: skips inspect.isawaitable on the hot path.
_PLAIN: frozenset[type] = frozenset({int, float, str, bool, type(None), dict, list, tuple, bytes, StepResponse})
_NOT_STARTED = StepState.NOT_STARTED
_SKIPPED: Any = object()   # _succeeded's answer for a skip
_WAITING: Any = object()   # _succeeded's answer for an async step now waiting for its completion
_GO: Any = object()        # _before_retry: attempt now
_SUSPEND: Any = object()   # _before_retry: the attempt will happen later (durable timer, manual resume)
_DEADLINE: Any = object()  # _before_retry: the workflow timed out while waiting
_RETRY = FailureOutcome.RETRY
_DONE = TransactionState.DONE
_FAILED_STATES = (TransactionState.FAILED, TransactionState.REVERTED)


class _TimedOut(Exception):
    """A step exceeded its own timeout or the workflow's."""

    def __init__(self, transaction: bool, output: Any = None, compensate_input: Any = None,
                 has_output: bool = False) -> None:
        super().__init__("timeout")
        self.transaction = transaction
        self.output = output
        self.compensate_input = compensate_input
        self.has_output = has_output


def _validate_events(events: Mapping[str, Callable[[dict[str, Any]], Any]] | None) -> dict[str, Any]:
    if not events:
        return {}
    out: dict[str, Any] = {}
    for name, fn in events.items():
        if name not in EVENT_TYPES:
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f'Unknown event type "{name}" in events. Known: {", ".join(sorted(EVENT_TYPES))}.')
        if not callable(fn):
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f'The handler of event "{name}" must be callable, got {fn!r}.')
        out[name] = fn
    return out


class Run:
    """One execution being driven: the transaction, its resolver state and the run-wide facts."""

    FAST: ClassVar[bool] = True  # may use the inline fast paths (a durable run checkpoints instead)

    __slots__ = (
        "_container",
        "children",
        "compiled",
        "context",
        "deadline",
        "event_group_id",
        "handlers",
        "inflight",
        "listeners",
        "memo",
        "now",
        "outputs",
        "parent_step_idempotency_key",
        "payload",
        "run_id",
        "transaction_id",
        "txn",
        "workflow_id",
    )

    def __init__(self, compiled: CompiledWorkflow, payload: Any, *, transaction_id: str, run_id: str,
                 container: Container | None, context: dict[str, Any], event_group_id: str,
                 parent_step_idempotency_key: str | None = None,
                 listeners: dict[str, Any] | None = None) -> None:
        self.compiled = compiled
        self.handlers: tuple[StepHandler, ...] = compiled.handlers
        patcher = patches.current()
        if patcher is not None:  # a test changed what some steps do (stepwork.testing)
            self.handlers = patcher(compiled, transaction_id) or compiled.handlers
        self.workflow_id = compiled.name
        self.transaction_id = transaction_id
        self.run_id = run_id
        self._container = container
        self.context = context
        self.event_group_id = event_group_id
        self.parent_step_idempotency_key = parent_step_idempotency_key
        self.listeners: dict[str, Any] = listeners or {}
        metadata: dict[str, Any] = {"eventGroupId": event_group_id}
        if parent_step_idempotency_key is not None:
            metadata["parentStepIdempotencyKey"] = parent_step_idempotency_key
        self.txn = Transaction(compiled.plan, transaction_id, run_id, payload, metadata)
        self.payload = payload
        self.outputs = self.txn.outputs
        self.memo: dict[int, Any] = {}
        self.inflight: dict[int, asyncio.Future[None]] | None = None
        self.children: dict[str, Run] = {}
        self.deadline: float | None = None
        self.now: Callable[[], float] = time.time  # the wall clock (an engine's clock for engine runs)

    @property
    def container(self) -> Container:
        """The run's container (an empty one, made on first use, when none was given)."""
        if self._container is None:
            self._container = Container()
        return self._container

    # -- driving forward --------------------------------------------------------------------------

    async def drive(self) -> None:
        """Run every stage, then compensate if a failure asks for it."""
        txn = self.txn
        handlers = self.handlers
        inv_state = txn.inv_state
        listeners = self.listeners
        timeout = txn.plan.options.timeout
        if timeout is not None:
            loop = asyncio.get_running_loop()
            self.deadline = loop.time() + timeout
        txn.begin(self.now())
        if listeners:
            await self._emit("on_begin")
        fast_ok = not listeners and self.deadline is None
        stages = txn.plan.stages
        n_stages = len(stages)
        while txn.cursor < n_stages and not txn.failing:
            stage = stages[txn.cursor]
            txn.cursor += 1
            if self.deadline is not None and asyncio.get_running_loop().time() >= self.deadline:
                await self._transaction_timed_out()
                break
            if len(stage) == 1:
                i = stage[0]
                if inv_state[i] is not _NOT_STARTED:
                    continue  # skipped by an earlier failure
                h = handlers[i]
                if fast_ok and h.fast:
                    # The hot path: the function is called inline, a coroutine awaited in place.
                    attempt = txn.start_invoke(i, self.now())
                    try:
                        f1 = h.invoke1
                        if f1 is not None:
                            r = f1(h.read_input(self))
                        else:
                            r = h.invoke(h.read_input(self), StepContext(self, h.name, "invoke", attempt))
                        if r.__class__ not in _PLAIN and inspect.isawaitable(r):
                            r = await r
                    except Exception as exc:
                        outcome = await self._invoke_failed(i, exc)
                    else:
                        if r.__class__ is StepResponse and r is not _SKIP_MARKER:
                            txn.invoke_succeeded(i, r.output, r.compensate_input)
                        else:
                            self._succeeded(i, r)
                        continue
                    if outcome is _RETRY:  # retried outside the except block: no chaining to this error
                        await self._invoke(i, retry=True)
                    continue
                await self._invoke(i)
            else:
                members = [i for i in stage if inv_state[i] is _NOT_STARTED]
                if fast_ok and all(handlers[i].fast and not handlers[i].step.options.max_retries for i in members):
                    await self._parallel_fast(members)
                else:
                    await asyncio.gather(*[self._invoke(i) for i in members])
        if txn.failing:
            await self._compensate()
        else:
            txn.finish_invoking()

    async def _invoke(self, i: int, *, retry: bool = False, resume: bool = False) -> None:
        """Invoke step ``i`` with its conditions, retries and timeouts (the general path).

        ``retry``: a failed attempt came before (its retry interval applies); ``resume``: the step
        was interrupted or its retry is due, so it is attempted now.
        """
        txn = self.txn
        h = self.handlers[i]
        opts = h.step.options
        listeners = self.listeners
        if resume:
            retry = False
        elif not retry and h.conditions:
            try:
                for node in h.conditions:
                    if not await self._lazy(node):
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
                if how is _SUSPEND:
                    return
                if how is _DEADLINE:
                    await self._invoke_failed(i, TransactionTimeoutError(), timed_out=_TimedOut(True))
                    await self._step_settled(i)
                    return
            retry = True
            attempt = txn.start_invoke(i, self.now())
            await self._step_started(i)
            if listeners:
                await self._emit("on_step_begin", step=i)
            try:
                if h.pre:
                    await self._ensure(h.pre)
                ctx = StepContext(self, h.name, "invoke", attempt)
                r = await self._call(h, h.read_input(self), ctx)
                output = self._succeeded(i, r)
            except _TimedOut as t:
                error: BaseException = TransactionTimeoutError() if t.transaction else StepTimeoutError(
                    f'Step "{h.name}" exceeded its timeout of {opts.timeout} seconds.')
                await self._invoke_failed(i, error, timed_out=t)
                await self._step_settled(i)
                return
            except Exception as exc:
                if await self._invoke_failed(i, exc) is _RETRY:
                    continue
                await self._step_settled(i)
                return
            await self._step_settled(i)
            if listeners:
                if output is _WAITING:
                    await self._emit("on_step_awaiting", step=i)
                elif output is not _SKIPPED:
                    await self._emit("on_step_success", step=i, response=output)
            return

    # -- hooks a durable run overrides --------------------------------------------------------------

    async def _before_retry(self, i: int) -> object:
        """Before another attempt of step ``i``: wait its retry interval here (``_GO``), or report
        that the workflow deadline came first (``_DEADLINE``); a durable run may suspend (``_SUSPEND``)."""
        interval = self.handlers[i].step.options.retry_interval
        if interval and not await self._sleep(interval):
            return _DEADLINE
        return _GO

    async def _step_started(self, i: int) -> None:
        """Step ``i`` is about to be called (a durable run checkpoints here)."""

    async def _step_settled(self, i: int) -> None:
        """Step ``i`` succeeded, failed, or waits (a durable run records it)."""

    def _succeeded(self, i: int, r: Any) -> Any:
        """Record step ``i``'s return value ``r``; return its output (``_SKIPPED`` for a skip)."""
        if isinstance(r, StepResponse):
            if is_skip(r):
                self.txn.invoke_skipped(i)
                return _SKIPPED
            self.txn.invoke_succeeded(i, r.output, r.compensate_input)
            return r.output
        self.txn.invoke_succeeded(i, r, r)
        return r

    async def _parallel_fast(self, members: list[int]) -> None:
        """A parallel stage of fast steps without retries: their coroutines go straight to gather."""
        txn = self.txn
        handlers = self.handlers
        now = self.now()
        pending: list[Any] = []
        waiting: list[int] = []
        for i in members:
            h = handlers[i]
            attempt = txn.start_invoke(i, now)
            try:
                f1 = h.invoke1
                if f1 is not None:
                    r = f1(h.read_input(self))
                else:
                    r = h.invoke(h.read_input(self), StepContext(self, h.name, "invoke", attempt))
            except Exception as exc:  # every step error is recorded
                await self._invoke_failed(i, exc)
                continue
            if r.__class__ not in _PLAIN and inspect.isawaitable(r):
                pending.append(r)
                waiting.append(i)
            else:
                self._succeeded(i, r)
        if not pending:
            return
        results = await asyncio.gather(*pending, return_exceptions=True)
        for i, r in zip(waiting, results, strict=True):
            if isinstance(r, BaseException):
                if not isinstance(r, (Exception, asyncio.CancelledError)):
                    raise r
                await self._invoke_failed(i, r)
            else:
                self._succeeded(i, r)

    async def _call(self, h: StepHandler, value: Any, ctx: StepContext) -> Any:
        """Call the invoke function, enforcing the step's timeout and the workflow's."""
        loop = asyncio.get_running_loop()
        opts = h.step.options
        started = loop.time()
        limit = None if opts.timeout is None else started + opts.timeout
        deadline = self.deadline
        if deadline is not None and (limit is None or deadline < limit):
            limit = deadline
        if opts.thread and not h.invoke_is_coro:
            r = await asyncio.to_thread(h.invoke, value, ctx)
        else:
            r = h.invoke(value, ctx)
        if r.__class__ not in _PLAIN and inspect.isawaitable(r):
            if limit is None:
                return await r
            cm = asyncio.timeout_at(limit)
            try:
                async with cm:
                    r = await r
            except TimeoutError:
                if cm.expired():
                    raise _TimedOut(deadline is not None and loop.time() >= deadline) from None
                raise
            if not cm.expired():
                return r
            # The step swallowed its cancellation and returned: it still ran out of time.
        elif limit is None or loop.time() <= limit:
            return r
        # A plain function cannot be interrupted: it is marked timed out when it returns late.
        output, comp = (r.output, r.compensate_input) if isinstance(r, StepResponse) else (r, r)
        raise _TimedOut(deadline is not None and loop.time() >= deadline, output, comp, True)

    async def _invoke_failed(self, i: int, error: BaseException, *, timed_out: _TimedOut | None = None,
                             permanent: bool = False) -> FailureOutcome:
        txn = self.txn
        if timed_out is not None:
            if timed_out.transaction and txn.timed_out_at is None:
                txn.timed_out_at = self.now()
                if self.listeners:
                    await self._emit("on_timeout")
            outcome = txn.invoke_failed(
                i, error, timeout=not timed_out.transaction, transaction_timeout=timed_out.transaction,
                compensate_input=timed_out.compensate_input, output=timed_out.output,
                has_output=timed_out.has_output)
        elif isinstance(error, PermanentStepFailure):
            outcome = txn.invoke_failed(i, error, permanent=True, compensate_input=error.compensate_input)
        else:
            outcome = txn.invoke_failed(i, error, permanent=permanent)
        if self.listeners and outcome is not _RETRY:
            await self._emit("on_step_failure", step=i, errors=[txn.errors[-1].to_dict()])
        return outcome

    async def _transaction_timed_out(self) -> None:
        txn = self.txn
        txn.timed_out_at = self.now()
        txn.failing = True
        txn.errors.append(StepFailure(None, "invoke", TransactionTimeoutError()))
        if self.listeners:
            await self._emit("on_timeout")

    async def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` (retry interval); False if the workflow deadline came first."""
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

    async def _lazy(self, node: LazyNode) -> Any:
        """The value of a lazy node (transform or condition), computed at most once per run."""
        memo = self.memo
        if node.key not in memo:
            await self._ensure((*node.deps, node))
        return memo[node.key]

    async def _ensure(self, nodes: tuple[LazyNode, ...]) -> None:
        memo = self.memo
        for node in nodes:
            key = node.key
            if key in memo:
                continue
            inflight = self.inflight
            if inflight is not None and key in inflight:
                await inflight[key]  # a parallel step is computing it: share its value (or error)
                continue
            value = node.compute(self)
            if node.is_async or (value.__class__ not in _PLAIN and inspect.isawaitable(value)):
                # Parallel steps may need the same value meanwhile: they wait on this future.
                if inflight is None:
                    inflight = self.inflight = {}
                future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                inflight[key] = future
                try:
                    value = await value
                except BaseException as exc:
                    future.set_exception(exc)
                    future.exception()  # retrieved here, so no "never retrieved" warning
                    raise
                finally:
                    if not future.done():
                        future.set_result(None)
                memo[key] = value
                continue
            memo[key] = value

    # -- compensating -----------------------------------------------------------------------------

    async def _compensate(self, *, cancel: bool = False) -> None:
        txn = self.txn
        txn.begin_compensation(self.now(), cancel=cancel)
        if self.listeners:
            await self._emit("on_compensate_begin")
        handlers = self.handlers
        fast_ok = self.FAST and not self.listeners
        for group in txn.compensation_stages():
            if len(group) == 1:
                i = group[0]
                h = handlers[i]
                fn = h.compensate
                if fast_ok and fn is not None and not h.compensate_is_coro:
                    # The hot path: a plain compensation function, called inline.
                    attempt = txn.start_compensate(i)
                    try:
                        f1 = h.compensate1
                        if f1 is not None:
                            r = f1(clone(txn.comp_input[i]))
                        else:
                            r = fn(clone(txn.comp_input[i]), StepContext(self, h.name, "compensate", attempt))
                        if r.__class__ not in _PLAIN and inspect.isawaitable(r):
                            r = await r
                    except Exception as exc:  # every compensation error is recorded
                        outcome = txn.compensate_failed(i, exc)
                    else:
                        txn.compensate_succeeded(i, r.output if isinstance(r, StepResponse) else r)
                        continue
                    if outcome is _RETRY:  # outside the except block: no chaining to this error
                        await self._compensate_step(i, retry=True)
                    continue
                await self._compensate_step(i)
            else:
                await asyncio.gather(*[self._compensate_step(i) for i in group])
        txn.finish_compensating()

    async def _compensate_step(self, i: int, *, retry: bool = False) -> None:
        txn = self.txn
        h = self.handlers[i]
        fn = h.compensate
        if fn is None:
            txn.compensate_skipped(i)
            await self._step_settled(i)
            return
        listeners = self.listeners
        while True:
            if retry and await self._before_compensate_retry(i) is _SUSPEND:
                return
            retry = True
            attempt = txn.start_compensate(i)
            await self._step_started(i)
            if listeners:
                await self._emit("on_step_begin", step=i)
            try:
                ctx = StepContext(self, h.name, "compensate", attempt)
                r = fn(clone(txn.comp_input[i]), ctx)
                if r.__class__ not in _PLAIN and inspect.isawaitable(r):
                    r = await r
                output = self._compensated(i, r)
            except Exception as exc:
                outcome = txn.compensate_failed(i, exc)
                if outcome is _RETRY:
                    continue
                await self._step_settled(i)
                if listeners:
                    await self._emit("on_compensate_step_failure", step=i, errors=[txn.errors[-1].to_dict()])
                return
            await self._step_settled(i)
            if listeners and output is not _WAITING:
                await self._emit("on_compensate_step_success", step=i, response=output)
            return

    def _compensated(self, i: int, r: Any) -> Any:
        """Record step ``i``'s compensation result ``r``; return its output."""
        output = r.output if isinstance(r, StepResponse) else r
        self.txn.compensate_succeeded(i, output)
        return output

    async def _before_compensate_retry(self, i: int) -> object:
        """Before another compensation attempt of step ``i``: wait its retry interval (``_GO``)."""
        interval = self.handlers[i].step.options.retry_interval
        if interval:
            await asyncio.sleep(interval)
        return _GO

    async def revert(self) -> None:
        """Compensate every completed step of this (finished or running) execution: cancel."""
        await self._compensate(cancel=True)

    # -- nested workflows -------------------------------------------------------------------------

    async def run_child(self, compiled: CompiledWorkflow, value: Any, ctx: StepContext) -> StepResponse[Any, Any]:
        """Run ``compiled`` as the nested workflow of step ``ctx.step_name``."""
        tid = f"{ctx.step_name}-{self.transaction_id}"
        if ctx.attempt > 1:
            tid += f"-attempt-{ctx.attempt}"
        context = dict(self.context)
        parent_key = ctx.idempotency_key
        context.update(transaction_id=tid, event_group_id=self.event_group_id,
                       parent_step_idempotency_key=parent_key)
        child = Run(compiled, value, transaction_id=tid, run_id=self.run_id, container=self._container,
                    context=context, event_group_id=self.event_group_id,
                    parent_step_idempotency_key=parent_key)
        await child.drive()
        self.children[tid] = child
        if child.txn.state is not _DONE:
            raise error_to_raise(child.txn)
        result = await child.resolve_result(None)
        return StepResponse(result, {"workflow_id": compiled.name, "transaction_id": tid})

    async def revert_child(self, value: Any, ctx: StepContext) -> None:
        """Compensation of a nested-workflow step: revert the child it ran."""
        if not isinstance(value, dict):
            return
        child = self.children.get(value.get("transaction_id", ""))
        if child is None or child.txn.state is not _DONE:
            return
        await child.revert()
        if child.txn.state is not TransactionState.REVERTED:
            raise error_to_raise(child.txn, handler_type="compensate")

    # -- results and events -----------------------------------------------------------------------

    async def resolve_result(self, result_from: str | None) -> Any:
        """The workflow's result: the composer's value, or the output of step ``result_from``."""
        if result_from is not None:
            return self.outputs[self.txn.plan.step(result_from).index]
        compiled = self.compiled
        if compiled.result_pre:
            await self._ensure(compiled.result_pre)
        return compiled.read_result(self)

    async def _emit(self, event_type: str, *, step: int | None = None, **fields: Any) -> None:
        fn = self.listeners.get(event_type)
        if fn is None:
            return
        event: dict[str, Any] = {"event_type": event_type, "workflow_id": self.workflow_id,
                                 "transaction_id": self.transaction_id}
        if step is not None:
            event["step"] = build_step_record(self.txn, step)
        event.update(fields)
        try:
            r = fn(event)
            if inspect.isawaitable(r):
                await r
        except Exception:
            logger.exception("The %s handler of workflow %s raised; ignored.", event_type, self.workflow_id)


def error_to_raise(txn: Transaction, handler_type: str = "invoke") -> BaseException:
    """The error a failed run raises: its first error, as the original exception when there is one."""
    failures = [e for e in txn.errors if e.handler_type == handler_type] or txn.errors
    if not failures:
        return StepworkError(StepworkError.Types.UNEXPECTED_STATE,
                             f'Workflow "{txn.plan.workflow_id}" ended "{txn.state}" without a recorded error.')
    first = failures[0]
    if first.exception is not None:
        return first.exception
    record = first.error
    err = StepworkError(str(record.get("type") or StepworkError.Types.UNEXPECTED_STATE),
                        str(record.get("message", "")))
    # Raised in another process (or stored): the original class is gone, its record is carried.
    err.name = str(record.get("name", "Error"))
    err.stack = str(record.get("stack", ""))
    err.action = first.action
    return err


async def execute(compiled: CompiledWorkflow, payload: Any, *, container: Container | None = None,
                  context: Mapping[str, Any] | None = None, transaction_id: str | None = None,
                  throw_on_error: bool = True, result_from: str | None = None,
                  events: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None,
                  listeners: Any = None) -> WorkflowResult[Any]:
    """Run a workflow in memory, start to finish, and return its result (the implicit engine).

    ``listeners`` (an engine's subscriptions view) replaces ``events`` when given.
    """
    if compiled.plan.has_async_steps:
        raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                            f'Workflow "{compiled.name}" has async steps, which wait for a completion from outside: '
                            "run it through a WorkflowEngine (`async with WorkflowEngine() as engine: await "
                            "engine.run(wf, ...)`, or register the engine in the container as "
                            "Modules.WORKFLOW_ENGINE).")
    ctx_dict: dict[str, Any] = dict(context) if context else {}
    if transaction_id is None:
        transaction_id = ctx_dict.get("transaction_id")
    if transaction_id is None:
        ulid = new_ulid()
        transaction_id = "auto-" + ulid
        event_group_id = ctx_dict.get("event_group_id") or ulid
    else:
        if not isinstance(transaction_id, str) or not transaction_id:
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f"transaction_id must be a non-empty string, got {transaction_id!r}.")
        event_group_id = ctx_dict.get("event_group_id") or new_ulid()
    ctx_dict["transaction_id"] = transaction_id
    ctx_dict["event_group_id"] = event_group_id
    if listeners is None:
        listeners = _validate_events(events) if events else None
    if result_from is not None:
        compiled.plan.step(result_from)  # unknown step name: a clear error before running
    run = Run(compiled, payload, transaction_id=transaction_id, run_id=new_ulid(), container=container,
              context=ctx_dict, event_group_id=event_group_id, listeners=listeners)
    await run.drive()
    return await finish(run, throw_on_error=throw_on_error, result_from=result_from)


async def finish(run: Run, *, throw_on_error: bool, result_from: str | None) -> WorkflowResult[Any]:
    """Resolve the result of a finished run, notify ``on_finish`` and raise if asked to."""
    txn = run.txn
    try:
        compiled = run.compiled
        if result_from is None and not compiled.result_pre:
            result = compiled.read_result(run)
        else:
            result = await run.resolve_result(result_from)
    except Exception as exc:
        txn.errors.append(StepFailure(None, "invoke", exc))
        result = None
        if throw_on_error:
            raise
    out: WorkflowResult[Any] = WorkflowResult(result, txn, run.parent_step_idempotency_key)
    if run.listeners and txn.is_finished:  # a run that stopped to wait has not finished
        await run._emit("on_finish", state=txn.state.value, result=result,
                        errors=[e.to_dict() for e in txn.errors])
    if throw_on_error and txn.state in _FAILED_STATES:
        raise error_to_raise(txn)
    return out

