"""Transaction and step states, and the table of allowed step transitions.

Each step has two records, ``invoke`` and ``compensate``, each a ``(state, status)`` pair. A move
that is not in the tables below raises ``StepworkError`` (``unexpected_state``): the state machine
refuses to go somewhere it has no business being, instead of silently recording nonsense.
"""

from __future__ import annotations

from enum import StrEnum

from stepwork.errors import StepworkError

__all__ = [
    "FINISHED_STATES",
    "FORWARD_STEP_STATES",
    "StepState",
    "StepStatus",
    "TransactionState",
    "check_state",
    "check_status",
]


class TransactionState(StrEnum):
    """State of a whole execution (a transaction)."""

    NOT_STARTED = "not_started"
    INVOKING = "invoking"
    WAITING_TO_COMPENSATE = "waiting_to_compensate"
    COMPENSATING = "compensating"
    DONE = "done"
    REVERTED = "reverted"
    FAILED = "failed"


class StepState(StrEnum):
    """State of one step's invoke or compensate record."""

    NOT_STARTED = "not_started"
    INVOKING = "invoking"
    COMPENSATING = "compensating"
    DONE = "done"
    REVERTED = "reverted"
    FAILED = "failed"
    DORMANT = "dormant"
    SKIPPED = "skipped"
    SKIPPED_FAILURE = "skipped_failure"
    TIMEOUT = "timeout"


class StepStatus(StrEnum):
    """Status of one step's invoke or compensate record."""

    IDLE = "idle"
    OK = "ok"
    WAITING_RESPONSE = "waiting_response"
    TEMP_FAILURE = "temp_failure"
    PERMANENT_FAILURE = "permanent_failure"


FINISHED_STATES = frozenset({TransactionState.DONE, TransactionState.REVERTED, TransactionState.FAILED})

# States after which the next stage may start (Medusa's "forward" states).
FORWARD_STEP_STATES = frozenset({
    StepState.DONE, StepState.FAILED, StepState.TIMEOUT, StepState.SKIPPED, StepState.SKIPPED_FAILURE,
})

_S = StepState
_STATE_MOVES: frozenset[tuple[StepState, StepState]] = frozenset({
    (_S.DORMANT, _S.NOT_STARTED),
    (_S.NOT_STARTED, _S.INVOKING),
    (_S.NOT_STARTED, _S.COMPENSATING),
    (_S.NOT_STARTED, _S.FAILED),
    (_S.NOT_STARTED, _S.SKIPPED),
    (_S.NOT_STARTED, _S.SKIPPED_FAILURE),
    (_S.INVOKING, _S.INVOKING),          # another attempt of the same step
    (_S.INVOKING, _S.FAILED),
    (_S.INVOKING, _S.DONE),
    (_S.INVOKING, _S.TIMEOUT),
    (_S.INVOKING, _S.SKIPPED),
    (_S.COMPENSATING, _S.COMPENSATING),  # another attempt of the compensation
    (_S.COMPENSATING, _S.REVERTED),
    (_S.COMPENSATING, _S.FAILED),
    (_S.DONE, _S.COMPENSATING),
})

_T = StepStatus
_STATUS_MOVES: frozenset[tuple[StepStatus, StepStatus]] = frozenset({
    *((status, _T.WAITING_RESPONSE) for status in StepStatus),  # any status may start waiting again
    (_T.IDLE, _T.OK),
    (_T.IDLE, _T.PERMANENT_FAILURE),
    (_T.WAITING_RESPONSE, _T.OK),
    (_T.WAITING_RESPONSE, _T.TEMP_FAILURE),
    (_T.WAITING_RESPONSE, _T.PERMANENT_FAILURE),
    (_T.TEMP_FAILURE, _T.IDLE),
    (_T.TEMP_FAILURE, _T.PERMANENT_FAILURE),
    (_T.PERMANENT_FAILURE, _T.IDLE),
})


def check_state(current: StepState, new: StepState) -> StepState:
    """Return ``new`` if a step record may move from ``current`` to it, else raise."""
    if (current, new) not in _STATE_MOVES:
        raise StepworkError(StepworkError.Types.UNEXPECTED_STATE,
                            f'Updating State from "{current}" to "{new}" is not allowed.')
    return new


def check_status(current: StepStatus, new: StepStatus) -> StepStatus:
    """Return ``new`` if a step record's status may move from ``current`` to it, else raise."""
    if (current, new) not in _STATUS_MOVES:
        raise StepworkError(StepworkError.Types.UNEXPECTED_STATE,
                            f'Updating Status from "{current}" to "{new}" is not allowed.')
    return new
