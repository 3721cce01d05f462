"""The state of one execution and every move it may make: the pure orchestration core.

A :class:`Transaction` holds the state of each step (``invoke`` and ``compensate`` records,
attempts, failures), the outputs later steps read, the recorded errors and the flags Medusa keeps.
Its methods are the state machine's transitions; each checks the move against the tables in
:mod:`stepwork.orchestration.states` and tells the caller what to do next (retry, compensate,
go on). It performs no I/O and reads no clock: times are passed in. The engine's runner drives it.
"""

from __future__ import annotations

from typing import Any

from stepwork.errors import StepworkError
from stepwork.orchestration.compensation import CompensationMoves
from stepwork.orchestration.definition import Plan
from stepwork.orchestration.failures import FailureOutcome, StepFailure
from stepwork.orchestration.states import (
    _STATE_MOVES,
    FINISHED_STATES,
    StepState,
    StepStatus,
    TransactionState,
    check_state,
    check_status,
)
from stepwork.orchestration.step_record import StepRecord

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


def _illegal_state(current: StepState, new: StepState) -> None:
    check_state(current, new)


def _illegal_status(current: StepStatus, new: StepStatus) -> None:
    check_status(current, new)


class Transaction(CompensationMoves):
    """One execution of a plan, and the moves of its state machine."""

    __slots__ = ()  # the fields are declared (as slots) by CompensationMoves

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
        if self.inv_state[index] is _INVOKING and status is _WAITING and not self.waiting[index]:
            raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                                f"Cannot set step {what}: the step is not waiting for a response yet (its "
                                "invocation is running, or was cut short when its process stopped and is "
                                "invoked again); send the response once the step waits.")
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

    # -- reading ----------------------------------------------------------------------------------

    def invoke_errors(self) -> list[StepFailure]:
        """The invoke-phase failures, in the order they happened."""
        return [e for e in self.errors if e.handler_type == "invoke"]
