"""What a failed attempt leads to, and how a failure is recorded (portable across processes)."""

from __future__ import annotations

from enum import Enum
from typing import Any

from stepwork.errors import serialize_error

__all__ = ["FailureOutcome", "StepFailure"]


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
