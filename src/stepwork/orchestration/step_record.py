"""A read-only view of one step's record inside a transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepwork.orchestration.states import StepState, StepStatus

if TYPE_CHECKING:
    from stepwork.orchestration.transaction import Transaction

__all__ = ["StepRecord"]


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
