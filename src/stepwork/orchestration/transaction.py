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
    _STATE_MOVES,
    _STATUS_MOVES,
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


# The hot transitions, derived from the tables in states.py and checked by identity.
_INTO_INVOKING = tuple(cur for (cur, new) in _STATE_MOVES if new is _S.INVOKING)
_INVOKING = _S.INVOKING
_DONE = _S.DONE
_WAITING = _T.WAITING_RESPONSE
_OK = _T.OK


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
    """A read/write view of one step's record inside a :class:`Transaction`.

    The transaction keeps each field in a list indexed by step (one list per field): creating a
    run then costs a few list multiplications instead of an object per step.
    """

    __slots__ = ("_t", "index")

    def __init__(self, txn: Transaction, index: int) -> None:
        self._t = txn
        self.index = index

    @property
    def invoke_state(self) -> StepState:
        return self._t.inv_state[self.index]

    @property
    def invoke_status(self) -> StepStatus:
        return self._t.inv_status[self.index]

    @property
    def comp_state(self) -> StepState:
        return self._t.comp_state[self.index]

    @property
    def comp_status(self) -> StepStatus:
        return self._t.comp_status[self.index]

    @property
    def attempts(self) -> int:
        return self._t.attempts[self.index]

    @property
    def failures(self) -> int:
        return self._t.failures[self.index]

    @property
    def started_at(self) -> float | None:
        return self._t.started_at_of[self.index]

    @property
    def last_attempt(self) -> float | None:
        return self._t.last_attempt[self.index]

    @property
    def comp_input(self) -> Any:
        return self._t.comp_input[self.index]

    @property
    def output(self) -> Any:
        return self._t.outputs[self.index]

    def __repr__(self) -> str:
        return (f"StepRecord({self._t.plan.steps[self.index].name!r}, invoke={self.invoke_state}/"
                f"{self.invoke_status}, compensate={self.comp_state}/{self.comp_status})")


def _illegal_state(current: StepState, new: StepState) -> None:
    check_state(current, new)


def _illegal_status(current: StepStatus, new: StepStatus) -> None:
    check_status(current, new)


class Transaction:
    """One execution of a plan, and the moves of its state machine."""

    __slots__ = ("attempts", "cancelled_at", "comp_failed", "comp_input", "comp_outputs", "comp_state",
                 "comp_status", "cursor", "errors", "failing", "failures", "has_failed_steps",
                 "has_reverted_steps", "has_skipped_on_failure_steps", "has_skipped_steps", "has_waiting_steps",
                 "inv_state", "inv_status", "invoke_attempts", "last_attempt", "metadata", "outputs", "payload",
                 "plan", "retry_at", "run_id", "started_at", "started_at_of", "state", "timed_out_at",
                 "transaction_id", "waiting")

    def __init__(self, plan: Plan, transaction_id: str, run_id: str, payload: Any,
                 metadata: dict[str, Any] | None = None) -> None:
        self.plan = plan
        self.transaction_id = transaction_id
        self.run_id = run_id
        self.payload = payload
        self.metadata: dict[str, Any] = metadata if metadata is not None else {}
        self.state = _X.NOT_STARTED
        n = len(plan.steps)
        # One list per field, indexed by step.
        self.inv_state: list[StepState] = [_S.NOT_STARTED] * n
        self.inv_status: list[StepStatus] = [_T.IDLE] * n
        self.comp_state: list[StepState] = [_S.DORMANT] * n
        self.comp_status: list[StepStatus] = [_T.IDLE] * n
        self.attempts: list[int] = [0] * n
        self.failures: list[int] = [0] * n
        self.started_at_of: list[float | None] = [None] * n
        self.last_attempt: list[float | None] = [None] * n
        self.comp_input: list[Any] = [None] * n
        self.waiting: list[bool] = [False] * n            # an async step waits for its completion
        self.invoke_attempts: dict[int, int] | None = None  # invoke attempts of compensated steps
        self.retry_at: list[float | None] = [None] * n    # when a suspended retry is due
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

    @property
    def steps(self) -> list[StepRecord]:
        """A view of every step's record, in plan order."""
        return [StepRecord(self, i) for i in range(len(self.plan.steps))]

    def step_record(self, index: int) -> StepRecord:
        """A view of step ``index``'s record."""
        return StepRecord(self, index)

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
        state = self.inv_state[index]
        if state not in _INTO_INVOKING:
            _illegal_state(state, _S.INVOKING)
        self.inv_state[index] = _INVOKING
        self.inv_status[index] = _WAITING  # any status may move to waiting_response
        attempts = self.attempts
        attempt = attempts[index] = attempts[index] + 1
        if attempt == 1:
            self.started_at_of[index] = now
        self.last_attempt[index] = now
        return attempt

    def invoke_succeeded(self, index: int, output: Any, compensate_input: Any) -> None:
        """The attempt returned ``output``; the compensation will receive ``compensate_input``."""
        state = self.inv_state[index]
        if state is not _INVOKING:
            _illegal_state(state, _S.DONE)
        status = self.inv_status[index]
        if status is not _WAITING:
            _illegal_status(status, _T.OK)
        self.inv_state[index] = _DONE
        self.inv_status[index] = _OK
        self.comp_input[index] = compensate_input
        if self.plan.save_response[index]:
            self.outputs[index] = output

    def invoke_waiting(self, index: int) -> None:
        """An async step's invoke returned: it now waits (``invoking``/``waiting_response``) for a
        completion from outside."""
        state = self.inv_state[index]
        if state is not _INVOKING:
            _illegal_state(state, _S.INVOKING)
        self.waiting[index] = True
        self.has_waiting_steps = True

    def complete_waiting(self, index: int, output: Any, compensate_input: Any) -> None:
        """A waiting async step was completed from outside with ``output``."""
        self._check_waiting(index, "success")
        self.waiting[index] = False
        self._refresh_waiting()
        self.invoke_succeeded(index, output, compensate_input)

    def fail_waiting(self, index: int, error: object, *, permanent: bool = False) -> FailureOutcome:
        """A waiting async step was failed from outside; its retry policy applies unless ``permanent``."""
        self._check_waiting(index, "failure")
        self.waiting[index] = False
        self._refresh_waiting()
        return self.invoke_failed(index, error, permanent=permanent)

    def _check_waiting(self, index: int, what: str) -> None:
        status = self.inv_status[index]
        if self.inv_state[index] is not _INVOKING or status is not _WAITING or not self.waiting[index]:
            shown = status if self.inv_state[index] is _INVOKING else self.inv_state[index]
            raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                                f"Cannot set step {what} when status is {shown}")

    def _refresh_waiting(self) -> None:
        self.has_waiting_steps = any(self.waiting)

    def invoke_skipped(self, index: int) -> None:
        """The step is skipped (``StepResponse.skip()`` or a false ``when``): output ``None``."""
        self.inv_state[index] = check_state(self.inv_state[index], _S.SKIPPED)
        self.inv_status[index] = check_status(self.inv_status[index], _T.OK)
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
        step = self.plan.steps[index]
        failures = self.failures[index] = self.failures[index] + 1
        permanent = permanent or timeout or transaction_timeout
        if not permanent and failures <= step.options.max_retries:
            self.inv_status[index] = check_status(self.inv_status[index], _T.TEMP_FAILURE)
            return FailureOutcome.RETRY
        self.inv_state[index] = check_state(self.inv_state[index],
                                            _S.TIMEOUT if (timeout or transaction_timeout) else _S.FAILED)
        self.inv_status[index] = check_status(self.inv_status[index], _T.PERMANENT_FAILURE)
        self.comp_input[index] = compensate_input
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
            i = later.index
            if self.inv_state[i] is _S.NOT_STARTED:
                self.inv_state[i] = check_state(self.inv_state[i], _S.SKIPPED_FAILURE)
                self.has_skipped_on_failure_steps = True

    def is_pending(self, index: int) -> bool:
        """True if step ``index`` has not started (it was not skipped by a failure)."""
        return self.inv_state[index] is _S.NOT_STARTED

    def running_steps(self) -> list[int]:
        """The steps whose invoke is in progress."""
        return [i for i, st in enumerate(self.inv_state) if st is _S.INVOKING]

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
        """True if step ``index`` ran (done, timed out or failed) and is not compensated yet (or its
        compensation was interrupted, or waits for a retry)."""
        comp = self.comp_state[index]
        if comp is _S.COMPENSATING:
            return not self.waiting[index]
        inv = self.inv_state[index]
        return comp is _S.DORMANT and (
            inv is _S.DONE or inv is _S.TIMEOUT or self.inv_status[index] is _T.PERMANENT_FAILURE)

    def compensation_settled(self, index: int) -> bool:
        """True if step ``index`` needs no (more) compensation work."""
        comp = self.comp_state[index]
        return comp is not _S.COMPENSATING and not self.needs_compensation(index)

    def compensate_waiting(self, index: int) -> None:
        """A ``compensate_async`` compensation returned: it waits for a completion from outside."""
        if self.comp_state[index] is not _S.COMPENSATING:
            _illegal_state(self.comp_state[index], _S.COMPENSATING)
        self.waiting[index] = True
        self.has_waiting_steps = True

    def complete_compensation_waiting(self, index: int, output: Any) -> None:
        """A waiting compensation was completed from outside."""
        if self.comp_state[index] is not _S.COMPENSATING or not self.waiting[index]:
            raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                                f"Cannot set step success when status is {self.comp_status[index]}")
        self.waiting[index] = False
        self._refresh_waiting()
        self.compensate_succeeded(index, output)

    def fail_compensation_waiting(self, index: int, error: object, *, permanent: bool = False) -> FailureOutcome:
        """A waiting compensation was failed from outside."""
        if self.comp_state[index] is not _S.COMPENSATING or not self.waiting[index]:
            raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                                f"Cannot set step failure when status is {self.comp_status[index]}")
        self.waiting[index] = False
        self._refresh_waiting()
        if permanent:
            self.failures[index] = self.plan.steps[index].options.max_retries
        return self.compensate_failed(index, error)

    def compensation_stages(self) -> list[list[int]]:
        """The steps to compensate, newest stage first; steps of one stage run concurrently."""
        out: list[list[int]] = []
        needs = self.needs_compensation
        for stage in reversed(self.plan.stages[: self.cursor]):
            if len(stage) == 1:
                if needs(stage[0]):
                    out.append([stage[0]])
            else:
                todo = [i for i in stage if needs(i)]
                if todo:
                    out.append(todo)
        return out

    def start_compensate(self, index: int) -> int:
        """Record the start of a compensation attempt; return its number (1-based)."""
        state = self.comp_state[index]
        if state is _S.DORMANT:
            if self.invoke_attempts is None:
                self.invoke_attempts = {}
            self.invoke_attempts[index] = self.attempts[index]
            self.attempts[index] = 0   # attempts and failures restart for the compensation (Medusa)
            self.failures[index] = 0
            state = _S.NOT_STARTED
        elif (state, _S.COMPENSATING) not in _STATE_MOVES:
            _illegal_state(state, _S.COMPENSATING)
        status = self.comp_status[index]
        if (status, _T.WAITING_RESPONSE) not in _STATUS_MOVES:
            _illegal_status(status, _T.WAITING_RESPONSE)
        self.comp_state[index] = _S.COMPENSATING
        self.comp_status[index] = _T.WAITING_RESPONSE
        attempt = self.attempts[index] = self.attempts[index] + 1
        return attempt

    def compensate_succeeded(self, index: int, output: Any) -> None:
        """The compensation returned ``output``."""
        state = self.comp_state[index]
        if state is not _S.COMPENSATING:
            _illegal_state(state, _S.REVERTED)
        status = self.comp_status[index]
        if status is not _T.WAITING_RESPONSE:
            _illegal_status(status, _T.OK)
        self.comp_state[index] = _S.REVERTED
        self.comp_status[index] = _T.OK
        self.has_reverted_steps = True
        if output is not None:
            self.comp_outputs[self.plan.steps[index].name] = output

    def compensate_skipped(self, index: int) -> None:
        """The step has no compensation: mark it ``reverted`` without calling anything."""
        state = check_state(self.comp_state[index], _S.NOT_STARTED)
        state = check_state(state, _S.COMPENSATING)
        self.comp_state[index] = check_state(state, _S.REVERTED)
        self.has_reverted_steps = True

    def compensate_failed(self, index: int, error: object) -> FailureOutcome:
        """Record a failed compensation attempt: ``RETRY`` or, after the retries, a failure."""
        step = self.plan.steps[index]
        failures = self.failures[index] = self.failures[index] + 1
        if failures <= step.options.max_retries:
            self.comp_status[index] = check_status(self.comp_status[index], _T.TEMP_FAILURE)
            return FailureOutcome.RETRY
        self.comp_state[index] = check_state(self.comp_state[index], _S.FAILED)
        self.comp_status[index] = check_status(self.comp_status[index], _T.PERMANENT_FAILURE)
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
