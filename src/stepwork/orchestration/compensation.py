"""The compensation half of the state machine: moves of a transaction rolling back (a mixin of
:class:`~stepwork.orchestration.transaction.Transaction`)."""

from __future__ import annotations

from typing import Any

from stepwork.errors import StepworkError
from stepwork.orchestration.definition import Plan
from stepwork.orchestration.failures import FailureOutcome, StepFailure
from stepwork.orchestration.states import (
    _STATE_MOVES,
    _STATUS_MOVES,
    StepState,
    StepStatus,
    TransactionState,
    check_state,
    check_status,
)

__all__ = ["CompensationMoves"]

_S = StepState
_T = StepStatus
_X = TransactionState


class CompensationMoves:
    """Compensation transitions. The transaction's fields are declared here, as slots."""

    __slots__ = ("attempts", "cancelled_at", "comp_failed", "comp_input", "comp_outputs", "comp_state",
                 "comp_status", "cursor", "errors", "failing", "failures", "has_failed_steps",
                 "has_reverted_steps", "has_skipped_on_failure_steps", "has_skipped_steps", "has_waiting_steps",
                 "inv_state", "inv_status", "invoke_attempts", "last_attempt", "metadata", "outputs", "payload",
                 "plan", "retry_at", "run_id", "started_at", "started_at_of", "state", "timed_out_at",
                 "transaction_id", "waiting")

    plan: Plan
    state: TransactionState
    cursor: int
    inv_state: list[StepState]
    inv_status: list[StepStatus]
    comp_state: list[StepState]
    comp_status: list[StepStatus]
    attempts: list[int]
    failures: list[int]
    waiting: list[bool]
    invoke_attempts: dict[int, int] | None
    comp_outputs: dict[str, Any]
    errors: list[StepFailure]
    comp_failed: bool
    cancelled_at: float | None
    has_waiting_steps: bool
    has_reverted_steps: bool

    def _move(self, new: TransactionState) -> None:
        raise NotImplementedError

    def _refresh_waiting(self) -> None:
        raise NotImplementedError

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
            check_state(self.comp_state[index], _S.COMPENSATING)
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
            check_state(state, _S.COMPENSATING)
        status = self.comp_status[index]
        if (status, _T.WAITING_RESPONSE) not in _STATUS_MOVES:
            check_status(status, _T.WAITING_RESPONSE)
        self.comp_state[index] = _S.COMPENSATING
        self.comp_status[index] = _T.WAITING_RESPONSE
        attempt = self.attempts[index] = self.attempts[index] + 1
        return attempt

    def compensate_succeeded(self, index: int, output: Any) -> None:
        """The compensation returned ``output``."""
        state = self.comp_state[index]
        if state is not _S.COMPENSATING:
            check_state(state, _S.REVERTED)
        status = self.comp_status[index]
        if status is not _T.WAITING_RESPONSE:
            check_status(status, _T.OK)
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
