"""The state of one execution and every move it may make: the pure orchestration core.

A :class:`Transaction` holds the state of each step (``invoke`` and ``compensate`` records,
attempts, failures), the outputs later steps read, the recorded errors and the flags Medusa keeps.
Its methods are the state machine's transitions; each checks the move against the tables in
:mod:`stepwork.orchestration.states` and tells the caller what to do next (retry, compensate,
go on). It performs no I/O and reads no clock: times are passed in. The engine's runner drives it.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from stepwork.errors import StepworkError, serialize_error
from stepwork.orchestration.definition import Plan
from stepwork.orchestration.states import (
    FINISHED_STATES,
    StepState,
    StepStatus,
    TransactionState,
    check_state,
    check_status,
)

__all__ = ["FailureOutcome", "StepFailure", "StepRecord", "Transaction"]

_S = StepState
_T = StepStatus
_X = TransactionState

_TXN_MOVES: frozenset[tuple[TransactionState, TransactionState]] = frozenset({
    (_X.NOT_STARTED, _X.INVOKING),
    (_X.NOT_STARTED, _X.WAITING_TO_COMPENSATE),
    (_X.INVOKING, _X.DONE),
    (_X.INVOKING, _X.WAITING_TO_COMPENSATE),
    (_X.DONE, _X.WAITING_TO_COMPENSATE),          # cancel of a finished, stored execution
    (_X.WAITING_TO_COMPENSATE, _X.COMPENSATING),
    (_X.COMPENSATING, _X.REVERTED),
    (_X.COMPENSATING, _X.FAILED),
})


class FailureOutcome(Enum):
    """What the runner must do after a failed attempt."""

    RETRY = "retry"            # attempt again (after the step's retry interval)
    CONTINUE = "continue"      # the failure is recorded and ignored; go on with the next stage
    COMPENSATE = "compensate"  # the transaction must be rolled back


class StepFailure:
    """One recorded failure: ``action`` (step name), ``handler_type`` and the ``error`` record.

    ``error`` is the portable dict ``{message, name, type?, stack}``; it is built on first read.
    ``exception`` is the original exception object when this process raised it, else ``None``.
    """

    __slots__ = ("_error", "action", "exception", "handler_type")

    def __init__(self, action: str | None, handler_type: str, error: object) -> None:
        self.action = action
        self.handler_type = handler_type
        if isinstance(error, BaseException):
            self.exception: BaseException | None = error
            self._error: dict[str, Any] | None = None
        else:
            self.exception = None
            self._error = error if _is_record(error) else serialize_error(error)  # type: ignore[assignment]

    @property
    def error(self) -> dict[str, Any]:
        """The portable error record."""
        if self._error is None:
            self._error = serialize_error(self.exception)
        return self._error

    def to_dict(self) -> dict[str, Any]:
        """``{action, handler_type, error}``, as stored in ``context["errors"]``."""
        return {"action": self.action, "handler_type": self.handler_type, "error": self.error}

    def __repr__(self) -> str:
        return (f"StepFailure(action={self.action!r}, handler_type={self.handler_type!r}, "
                f"message={self.error.get('message')!r})")


def _is_record(value: object) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("message"), str)
            and isinstance(value.get("name"), str) and "stack" in value)


class StepRecord:
    """The run-time record of one step."""

    __slots__ = ("attempts", "comp_input", "comp_state", "comp_status", "failures", "index",
                 "invoke_state", "invoke_status", "last_attempt", "started_at")

    def __init__(self, index: int) -> None:
        self.index = index
        self.invoke_state = _S.NOT_STARTED
        self.invoke_status = _T.IDLE
        self.comp_state = _S.DORMANT
        self.comp_status = _T.IDLE
        self.attempts = 0
        self.failures = 0
        self.started_at: float | None = None
        self.last_attempt: float | None = None
        self.comp_input: Any = None


class Transaction:
    """One execution of a plan, and the moves of its state machine."""

    __slots__ = ("cancelled_at", "comp_failed", "comp_outputs", "cursor", "errors", "failing",
                 "has_failed_steps", "has_reverted_steps", "has_skipped_on_failure_steps",
                 "has_skipped_steps", "has_waiting_steps", "metadata", "outputs", "payload", "plan",
                 "run_id", "started_at", "state", "steps", "timed_out_at", "transaction_id")

    def __init__(self, plan: Plan, transaction_id: str, run_id: str, payload: Any,
                 metadata: dict[str, Any] | None = None) -> None:
        self.plan = plan
        self.transaction_id = transaction_id
        self.run_id = run_id
        self.payload = payload
        self.metadata: dict[str, Any] = metadata if metadata is not None else {}
        self.state = _X.NOT_STARTED
        n = len(plan.steps)
        self.steps = [StepRecord(i) for i in range(n)]
        self.outputs: list[Any] = [None] * n   # what later steps and the result read
        self.comp_outputs: dict[str, Any] = {}
        self.errors: list[StepFailure] = []
        self.cursor = 0                         # next stage to start
        self.failing = False                    # a failure asks for compensation
        self.comp_failed = False
        self.started_at: float | None = None
        self.timed_out_at: float | None = None
        self.cancelled_at: float | None = None
        self.has_failed_steps = False
        self.has_skipped_steps = False
        self.has_skipped_on_failure_steps = False
        self.has_waiting_steps = False
        self.has_reverted_steps = False

    # -- the transaction itself -------------------------------------------------------------------

    def _move(self, new: TransactionState) -> None:
        if (self.state, new) not in _TXN_MOVES:
            raise StepworkError(StepworkError.Types.UNEXPECTED_STATE,
                                f'Transaction "{self.transaction_id}" cannot move from "{self.state}" '
                                f'to "{new}".')
        self.state = new

    @property
    def is_finished(self) -> bool:
        """True once the transaction is ``done``, ``reverted`` or ``failed``."""
        return self.state in FINISHED_STATES

    def begin(self, now: float) -> None:
        """Start invoking."""
        self._move(_X.INVOKING)
        self.started_at = now

    def next_stage(self) -> tuple[int, ...] | None:
        """The next stage to run, or ``None`` when every stage has been started."""
        stages = self.plan.stages
        if self.cursor >= len(stages):
            return None
        stage = stages[self.cursor]
        self.cursor += 1
        return stage

    def finish_invoking(self) -> TransactionState:
        """Every stage settled without a failure that asks for compensation: ``done``."""
        self._move(_X.DONE)
        return self.state

    # -- invoking a step --------------------------------------------------------------------------

    def start_invoke(self, index: int, now: float) -> int:
        """Record the start of an attempt of step ``index``; return the attempt number (1-based)."""
        rec = self.steps[index]
        rec.invoke_state = check_state(rec.invoke_state, _S.INVOKING)
        rec.invoke_status = check_status(rec.invoke_status, _T.WAITING_RESPONSE)
        rec.attempts += 1
        if rec.started_at is None:
            rec.started_at = now
        rec.last_attempt = now
        return rec.attempts

    def invoke_succeeded(self, index: int, output: Any, compensate_input: Any) -> None:
        """The attempt returned ``output``; the compensation will receive ``compensate_input``."""
        rec = self.steps[index]
        rec.invoke_state = check_state(rec.invoke_state, _S.DONE)
        rec.invoke_status = check_status(rec.invoke_status, _T.OK)
        rec.comp_input = compensate_input
        if self.plan.steps[index].options.save_response:
            self.outputs[index] = output

    def invoke_skipped(self, index: int) -> None:
        """The step is skipped (``StepResponse.skip()`` or a false ``when``): output ``None``."""
        rec = self.steps[index]
        rec.invoke_state = check_state(rec.invoke_state, _S.SKIPPED)
        rec.invoke_status = check_status(rec.invoke_status, _T.OK)
        self.has_skipped_steps = True

    def invoke_failed(self, index: int, error: object, *, permanent: bool = False,
                      timeout: bool = False, transaction_timeout: bool = False,
                      compensate_input: Any = None, output: Any = None,
                      has_output: bool = False) -> FailureOutcome:
        """Record a failed attempt and decide what follows.

        ``permanent`` skips the retries; ``timeout`` marks the step ``timeout``;
        ``transaction_timeout`` is a workflow timeout, which no step option can ignore.
        ``compensate_input`` is what the step's own compensation receives (a permanent failure's
        partial data, or a late step's output when ``has_output``).
        """
        rec = self.steps[index]
        step = self.plan.steps[index]
        rec.failures += 1
        permanent = permanent or timeout or transaction_timeout
        if not permanent and rec.failures <= step.options.max_retries:
            rec.invoke_status = check_status(rec.invoke_status, _T.TEMP_FAILURE)
            return FailureOutcome.RETRY
        rec.invoke_state = check_state(rec.invoke_state,
                                       _S.TIMEOUT if (timeout or transaction_timeout) else _S.FAILED)
        rec.invoke_status = check_status(rec.invoke_status, _T.PERMANENT_FAILURE)
        rec.comp_input = compensate_input
        if has_output and step.options.save_response:
            self.outputs[index] = output
        self.errors.append(StepFailure(step.name, "invoke", error))
        if transaction_timeout:
            self.failing = True
            return FailureOutcome.COMPENSATE
        if step.options.continue_on_permanent_failure:
            self.has_failed_steps = True
            return FailureOutcome.CONTINUE
        skip = step.options.skip_on_permanent_failure
        if skip:
            self.has_failed_steps = True
            self._skip_after_failure(step.stage, skip)
            return FailureOutcome.CONTINUE
        self.failing = True
        return FailureOutcome.COMPENSATE

    def _skip_after_failure(self, stage: int, until: bool | str) -> None:
        for later in self.plan.steps:
            if later.stage <= stage:
                continue
            if isinstance(until, str) and later.name == until:
                return
            rec = self.steps[later.index]
            if rec.invoke_state is _S.NOT_STARTED:
                rec.invoke_state = check_state(rec.invoke_state, _S.SKIPPED_FAILURE)
                self.has_skipped_on_failure_steps = True

    def is_pending(self, index: int) -> bool:
        """True if step ``index`` has not started (it was not skipped by a failure)."""
        return self.steps[index].invoke_state is _S.NOT_STARTED

    def mark_running_timed_out(self, now: float) -> list[int]:
        """The workflow timed out: return the steps still invoking (the runner fails each)."""
        self.timed_out_at = now
        return [r.index for r in self.steps if r.invoke_state is _S.INVOKING]

    # -- compensating -----------------------------------------------------------------------------

    def begin_compensation(self, now: float | None = None, *, cancel: bool = False) -> None:
        """Move to ``waiting_to_compensate`` then ``compensating``."""
        if cancel:
            if self.state is _X.FAILED:
                raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                                    "Cannot revert a permanent failed transaction.")
            if self.state in (_X.COMPENSATING, _X.WAITING_TO_COMPENSATE, _X.REVERTED):
                raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                                    "Cannot revert a transaction that is already compensating.")
            self.cancelled_at = now
        self._move(_X.WAITING_TO_COMPENSATE)
        self._move(_X.COMPENSATING)

    def needs_compensation(self, index: int) -> bool:
        """True if step ``index`` ran (done, timed out or failed) and is not compensated yet."""
        rec = self.steps[index]
        return rec.comp_state is _S.DORMANT and (
            rec.invoke_state is _S.DONE or rec.invoke_state is _S.TIMEOUT
            or rec.invoke_status is _T.PERMANENT_FAILURE)

    def compensation_stages(self) -> list[list[int]]:
        """The steps to compensate, newest stage first; steps of one stage run concurrently."""
        out: list[list[int]] = []
        for stage in reversed(self.plan.stages[: self.cursor]):
            todo = [i for i in stage if self.needs_compensation(i)]
            if todo:
                out.append(todo)
        return out

    def start_compensate(self, index: int) -> int:
        """Record the start of a compensation attempt; return its number (1-based)."""
        rec = self.steps[index]
        if rec.comp_state is _S.DORMANT:
            rec.comp_state = check_state(rec.comp_state, _S.NOT_STARTED)
            rec.attempts = 0   # attempts and failures restart for the compensation (Medusa)
            rec.failures = 0
        rec.comp_state = check_state(rec.comp_state, _S.COMPENSATING)
        rec.comp_status = check_status(rec.comp_status, _T.WAITING_RESPONSE)
        rec.attempts += 1
        return rec.attempts

    def compensate_succeeded(self, index: int, output: Any) -> None:
        """The compensation returned ``output``."""
        rec = self.steps[index]
        rec.comp_state = check_state(rec.comp_state, _S.REVERTED)
        rec.comp_status = check_status(rec.comp_status, _T.OK)
        self.has_reverted_steps = True
        if output is not None:
            self.comp_outputs[self.plan.steps[index].name] = output

    def compensate_skipped(self, index: int) -> None:
        """The step has no compensation: mark it ``reverted`` without calling anything."""
        rec = self.steps[index]
        rec.comp_state = check_state(rec.comp_state, _S.NOT_STARTED)
        rec.comp_state = check_state(rec.comp_state, _S.COMPENSATING)
        rec.comp_state = check_state(rec.comp_state, _S.REVERTED)
        self.has_reverted_steps = True

    def compensate_failed(self, index: int, error: object) -> FailureOutcome:
        """Record a failed compensation attempt: ``RETRY`` or, after the retries, a failure."""
        rec = self.steps[index]
        step = self.plan.steps[index]
        rec.failures += 1
        if rec.failures <= step.options.max_retries:
            rec.comp_status = check_status(rec.comp_status, _T.TEMP_FAILURE)
            return FailureOutcome.RETRY
        rec.comp_state = check_state(rec.comp_state, _S.FAILED)
        rec.comp_status = check_status(rec.comp_status, _T.PERMANENT_FAILURE)
        self.errors.append(StepFailure(step.name, "compensate", error))
        self.comp_failed = True
        return FailureOutcome.CONTINUE

    def finish_compensating(self) -> TransactionState:
        """Every compensation settled: ``reverted``, or ``failed`` if one of them failed."""
        self._move(_X.FAILED if self.comp_failed else _X.REVERTED)
        return self.state

    # -- reading ----------------------------------------------------------------------------------

    def invoke_errors(self) -> list[StepFailure]:
        """The invoke-phase failures, in the order they happened."""
        return [e for e in self.errors if e.handler_type == "invoke"]
