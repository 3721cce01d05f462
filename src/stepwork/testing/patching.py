"""Changing what steps do, for the runs started inside a ``with`` block; recording their inputs.

``override_steps`` replaces invoke functions, ``fail_step`` makes a step (or its compensation) fail
or time out on chosen attempts, ``crash_after`` stops the process's work on a run right after a
step's checkpoint, as a crash would. They apply to runs *started* inside the block (a run reads the
changes once, when it is created).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from stepwork.engine import faults, patches
from stepwork.engine.compiled import CompiledWorkflow, Handler, StepHandler, adapt_arity, is_coroutine_callable
from stepwork.engine.step_calls import TimedOut as _TimedOut
from stepwork.errors import StepworkError
from stepwork.sdk.steps import Step
from stepwork.sdk.workflows import Workflow

__all__ = ["InjectedStepFailure", "Recorder", "SimulatedCrash", "crash_after", "fail_step", "override_steps",
           "recording"]


class InjectedStepFailure(Exception):  # named for what it is in a test's output
    """The error a step (or compensation) made to fail by :func:`fail_step` raises."""


class SimulatedCrash(BaseException):  # not an error: the process "dies" here
    """Raised by :func:`crash_after`: the run stops as if its process had died (not caught by the
    engine's error handling, which only handles ``Exception``)."""


@dataclass(frozen=True)
class _Change:
    workflow: str
    index: int
    apply: Callable[[StepHandler], StepHandler]


_CHANGES: ContextVar[tuple[_Change, ...]] = ContextVar("stepwork_test_changes", default=())
_RECORDER: ContextVar[Recorder | None] = ContextVar("stepwork_test_recorder", default=None)
# The changes a run started with, by (workflow, transaction id): they stay with the run when it is
# continued later, outside the block (a completion from outside, a timer, a recovery).
_STICKY: dict[tuple[str, str], tuple[_Change, ...]] = {}


def _replace(h: StepHandler, *, invoke: Handler | None = None, invoke_is_coro: bool | None = None,
             compensate: Handler | None = None, compensate_is_coro: bool | None = None,
             raw_invoke: Callable[..., Any] | None = None) -> StepHandler:
    new = StepHandler(h.step, invoke if invoke is not None else h.invoke,
                      h.invoke_is_coro if invoke_is_coro is None else invoke_is_coro,
                      compensate if compensate is not None else h.compensate,
                      h.compensate_is_coro if compensate_is_coro is None else compensate_is_coro,
                      h.read_input, h.pre, h.conditions, h.kind, raw_invoke or h.raw_invoke,
                      async_in_definition=h.async_in_definition)
    new.fast = False  # changed steps go through the general path (timeouts, recording)
    new.invoke1 = None
    new.compensate1 = None
    return new


def _patcher(compiled: CompiledWorkflow, transaction_id: str) -> tuple[StepHandler, ...] | None:
    key = (compiled.name, transaction_id)
    changes = tuple(c for c in _CHANGES.get() if c.workflow == compiled.name)
    if changes:
        _STICKY[key] = changes
    else:
        changes = _STICKY.get(key, ())
    recorder = _RECORDER.get()
    if not changes and recorder is None:
        return None
    handlers = list(compiled.handlers)
    for change in changes:
        handlers[change.index] = change.apply(handlers[change.index])
    if recorder is not None:
        handlers = [recorder.wrap(compiled.name, h) for h in handlers]
    return tuple(handlers)


@contextlib.contextmanager
def _changing(changes: Iterable[_Change]) -> Iterator[None]:
    token = _CHANGES.set((*_CHANGES.get(), *changes))
    try:
        yield
    finally:
        _CHANGES.reset(token)


def _index(workflow: Workflow[Any, Any], step_name: str) -> int:
    if not isinstance(workflow, Workflow):
        raise StepworkError(StepworkError.Types.INVALID_DATA, f"Expected a workflow, got {workflow!r}.")
    return workflow.compiled.plan.step(step_name).index  # unknown: not_found listing the steps


def _overriding(fn: Callable[..., Any]) -> Callable[[StepHandler], StepHandler]:
    if isinstance(fn, Step):  # a whole step: its invoke and its compensation replace the step's
        step_obj = fn

        def change_both(h: StepHandler) -> StepHandler:
            comp = step_obj._compensate
            new = _replace(h, invoke=step_obj._invoke, invoke_is_coro=step_obj._invoke_is_coro,
                           compensate=comp, compensate_is_coro=step_obj._compensate_is_coro,
                           raw_invoke=step_obj.invoke_function)
            if comp is None:
                new.compensate = None
            return new
        return change_both
    handler = adapt_arity(fn)
    coro = is_coroutine_callable(fn)

    def change(h: StepHandler) -> StepHandler:
        return _replace(h, invoke=handler, invoke_is_coro=coro, raw_invoke=fn)
    return change


@contextlib.contextmanager
def override_steps(workflow: Workflow[Any, Any], overrides: Mapping[str, Callable[..., Any]]) -> Iterator[None]:
    """Replace the invoke function of named steps for runs started inside the block (they keep the
    replacement when they continue later, e.g. after a completion from outside).

    A replacement is a function taking ``(input, ctx)`` (or fewer arguments), like any invoke
    function: the step keeps its name, options and compensation; or a ``Step`` (from
    ``create_step``): its invoke *and* compensation replace the step's. An unknown step name raises
    ``StepworkError`` listing the workflow's steps.
    """
    changes = []
    for name, fn in overrides.items():
        if not callable(fn):
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f'The override of step "{name}" must be callable, got {fn!r}.')
        changes.append(_Change(workflow.name, _index(workflow, name), _overriding(fn)))
    with _changing(changes):
        yield


@contextlib.contextmanager
def fail_step(workflow: Workflow[Any, Any], step_name: str, *, attempts: Iterable[int] | None = None,
              compensation: bool = False, timeout: bool = False,
              error: BaseException | None = None) -> Iterator[None]:
    """Make step ``step_name`` fail on the given attempts (all of them by default).

    ``compensation=True`` fails its compensation instead (on those compensation attempts);
    ``timeout=True`` makes the invoke time out (the step ends ``timeout``) instead of raising;
    ``error`` is the exception to raise (an :class:`InjectedStepFailure` by default).
    """
    index = _index(workflow, step_name)
    chosen = None if attempts is None else frozenset(attempts)

    def due(attempt: int) -> bool:
        return chosen is None or attempt in chosen

    def failure(action: str, attempt: int) -> BaseException:
        if error is not None:
            return error
        return InjectedStepFailure(f'fail_step: the {action} of step "{step_name}" failed on attempt {attempt}')

    def change(h: StepHandler) -> StepHandler:
        if compensation:
            original_comp = h.compensate

            def failing_compensate(value: Any, ctx: Any) -> Any:
                if due(ctx.attempt):
                    raise failure("compensation", ctx.attempt)
                return None if original_comp is None else original_comp(value, ctx)
            return _replace(h, compensate=failing_compensate, compensate_is_coro=False)
        original = h.invoke

        def failing_invoke(value: Any, ctx: Any) -> Any:
            if due(ctx.attempt):
                if timeout:
                    raise _TimedOut(False)
                raise failure("invoke", ctx.attempt)
            return original(value, ctx)
        return _replace(h, invoke=failing_invoke, invoke_is_coro=False)

    with _changing([_Change(workflow.name, index, change)]):
        yield


@contextlib.contextmanager
def crash_after(workflow: Workflow[Any, Any], step_name: str) -> Iterator[None]:
    """Crash (raise :class:`SimulatedCrash` out of the run) right after step ``step_name``'s start
    is checkpointed, before its code runs, as if the process died there.

    The stored execution is left as a dead process leaves it (its lease held until it expires);
    advance the engine's clock past ``lease_ttl`` and the engine recovers it. This applies to
    stored runs of an engine, and to the step name in any workflow while the block is active.
    """
    _index(workflow, step_name)

    def crash() -> None:
        raise SimulatedCrash(f'crash_after: the process "died" after step "{step_name}" was checkpointed')
    name = f"checkpoint.after:{step_name}"
    faults.arm(name, crash)
    try:
        yield
    finally:
        faults.disarm(name)


@dataclass
class Call:
    """One recorded call of a step's invoke or compensate function."""

    action: str
    attempt: int
    input: Any


@dataclass
class Recorder:
    """The calls of every step of the runs started while it records, by (workflow, transaction, step)."""

    calls: dict[tuple[str, str, str], list[Call]] = field(default_factory=dict)

    def wrap(self, workflow_id: str, h: StepHandler) -> StepHandler:
        original_invoke = h.invoke
        original_comp = h.compensate

        def invoke(value: Any, ctx: Any) -> Any:
            self._record(workflow_id, ctx, value)
            return original_invoke(value, ctx)

        def compensate(value: Any, ctx: Any) -> Any:
            self._record(workflow_id, ctx, value)
            return None if original_comp is None else original_comp(value, ctx)
        new = _replace(h, invoke=invoke, compensate=compensate if original_comp is not None else None)
        if original_comp is None:
            new.compensate = None
        return new

    def _record(self, workflow_id: str, ctx: Any, value: Any) -> None:
        try:
            snapshot = copy.deepcopy(value)
        except Exception:  # not copyable: keep the object itself
            snapshot = value
        key = (workflow_id, ctx.transaction_id, ctx.step_name)
        self.calls.setdefault(key, []).append(Call(ctx.action, ctx.attempt, snapshot))

    def of(self, workflow_id: str, transaction_id: str, step_name: str) -> list[Call]:
        """The recorded calls of one step of one transaction, in order."""
        return self.calls.get((workflow_id, transaction_id, step_name), [])


@contextlib.contextmanager
def recording(recorder: Recorder | None = None) -> Iterator[Recorder]:
    """Record the inputs of every step of the runs started inside the block (``timeline`` reads them)."""
    rec = recorder or Recorder()
    token = _RECORDER.set(rec)
    try:
        yield rec
    finally:
        _RECORDER.reset(token)


def forget_runs() -> None:
    """Forget the changes remembered for runs started in earlier blocks (test isolation)."""
    _STICKY.clear()


patches.install(_patcher)  # importing the testing toolkit is what turns patching on


def current_recorder() -> Recorder | None:
    """The recorder active in this context, if any."""
    return _RECORDER.get()
