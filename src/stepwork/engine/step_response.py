"""``StepResponse``: what a step returns to say what its output and its compensation input are."""

from __future__ import annotations

from typing import Any, Generic, NoReturn, TypeVar

from stepwork.errors import PermanentStepFailure

__all__ = ["UNSET", "StepResponse"]

O_co = TypeVar("O_co", covariant=True)
C_co = TypeVar("C_co", covariant=True)


class _Unset:
    """Marker for "not given" where ``None`` is a meaningful value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()
_NONE: Any = None


class StepResponse(Generic[O_co, C_co]):
    """A step's result: ``output`` for later steps, ``compensate_input`` for its compensation.

    ``StepResponse(output)`` passes ``output`` to the compensation too;
    ``StepResponse(output, compensate_input)`` passes something else (e.g. only an id to delete).
    """

    __slots__ = ("compensate_input", "output")

    def __init__(self, output: O_co = _NONE, compensate_input: C_co = UNSET) -> None:
        self.output = output
        self.compensate_input: Any = output if compensate_input is UNSET else compensate_input

    @staticmethod
    def permanent_failure(message: str = "Permanent failure", compensate_input: Any = UNSET) -> NoReturn:
        """Fail the step at once, without retries; raises :class:`PermanentStepFailure`.

        Write ``return StepResponse.permanent_failure(...)`` or ``raise`` it; both work. When
        ``compensate_input`` is given, the failing step's own compensation receives it.
        """
        given = compensate_input is not UNSET
        raise PermanentStepFailure(message, compensate_input if given else None, has_compensate_input=given)

    @staticmethod
    def skip() -> StepResponse[None, None]:
        """Skip the step: it ends ``skipped``, its output is ``None`` and it is never compensated."""
        return _SKIP

    def __repr__(self) -> str:
        if self is _SKIP:
            return "StepResponse.skip()"
        return f"StepResponse(output={self.output!r}, compensate_input={self.compensate_input!r})"


_SKIP: StepResponse[None, None] = StepResponse(None)


def is_skip(value: object) -> bool:
    """True for the marker returned by :meth:`StepResponse.skip`."""
    return value is _SKIP
