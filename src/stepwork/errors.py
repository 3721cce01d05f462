"""Errors raised by stepwork, and the portable form errors are recorded in.

Hierarchy::

    StepworkError(type, message)            every error stepwork raises on purpose
    ├── PermanentStepFailure                a step failed and must not be retried
    ├── StepTimeoutError                    a step ran past its ``timeout``
    └── TransactionTimeoutError             the whole workflow ran past its ``timeout``

A recorded error (in ``WorkflowResult.errors`` and stored executions) is a dict
``{message, name, type?, stack}`` built by :func:`serialize_error`, which accepts any value a user
may throw or hand to ``set_step_failure`` and never raises itself.
"""

from __future__ import annotations

import json
import traceback
from enum import StrEnum
from typing import Any, ClassVar

__all__ = [
    "PermanentStepFailure",
    "StepTimeoutError",
    "StepworkError",
    "TransactionTimeoutError",
    "serialize_error",
]


class _ErrorTypes(StrEnum):
    NOT_FOUND = "not_found"
    INVALID_DATA = "invalid_data"
    NOT_ALLOWED = "not_allowed"
    DUPLICATE_ERROR = "duplicate_error"
    CONFLICT = "conflict"
    UNAUTHORIZED = "unauthorized"
    UNEXPECTED_STATE = "unexpected_state"
    INVALID_ARGUMENT = "invalid_argument"
    DB_ERROR = "database_error"


class StepworkError(Exception):
    """An error with a stable ``type`` (one of :attr:`StepworkError.Types`) and a readable message.

    ``StepworkError(type, message)``; ``str(err)`` is the message.
    """

    Types: ClassVar[type[_ErrorTypes]] = _ErrorTypes

    def __init__(self, type: str, message: str) -> None:
        super().__init__(message)
        self.type = str(type)
        self.message = message
        # Set when the error stands for a stored one raised elsewhere: its class name, stack text
        # and step name.
        self.name: str = self.__class__.__name__
        self.stack: str | None = None
        self.action: str | None = None

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.type!r}, {self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.type, self.message))


class PermanentStepFailure(StepworkError):
    """A step failure that is never retried. Raised by ``StepResponse.permanent_failure``.

    ``compensate_input``, when given, is what the failing step's own compensation receives.
    """

    def __init__(self, message: str = "Permanent failure", compensate_input: Any = None,
                 *, has_compensate_input: bool = False) -> None:
        super().__init__(_ErrorTypes.INVALID_DATA, message)
        self.compensate_input = compensate_input
        self.has_compensate_input = has_compensate_input

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.compensate_input),
                {"has_compensate_input": self.has_compensate_input})


class StepTimeoutError(StepworkError):
    """A step ran longer than its ``timeout`` option; the step fails permanently."""

    def __init__(self, message: str = "Step timed out") -> None:
        super().__init__(_ErrorTypes.NOT_ALLOWED, message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message,))


class TransactionTimeoutError(StepworkError):
    """The workflow ran longer than its ``timeout`` option; running steps are marked ``timeout``."""

    def __init__(self, message: str = "Transaction timed out") -> None:
        super().__init__(_ErrorTypes.NOT_ALLOWED, message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message,))


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except BaseException:
        try:
            return object.__repr__(value)
        except BaseException:
            return "<unprintable error>"


def _type_name(value: object) -> str:
    try:
        return type(value).__name__
    except BaseException:
        return "Error"


def _stack(error: BaseException) -> str:
    """The formatted traceback of ``error`` (and of its causes), without the ``^^^`` lines under
    each frame: Python finds where to put them by parsing every frame's source line, which made
    recording a failure cost ~0.5 ms; the file, line and code of each frame are all kept."""
    te = traceback.TracebackException(type(error), error, error.__traceback__, compact=True)
    todo = [te]
    seen: set[int] = set()
    while todo:
        t = todo.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        for frame in t.stack:
            frame.colno = frame.end_colno = None
        todo.extend(x for x in (t.__cause__, t.__context__) if x is not None)
        todo.extend(getattr(t, "exceptions", None) or ())  # an exception group's members
    return "".join(te.format())


def serialize_error(error: object) -> dict[str, Any]:
    """Return the portable record ``{message, name, type?, stack}`` of any error value.

    Exceptions keep their class name, message and formatted traceback; a ``StepworkError`` adds its
    ``type``. Strings, numbers, mappings, ``None`` and other values are recorded as Medusa records
    them (a mapping with ``message`` keeps its keys). Never raises.
    """
    if isinstance(error, BaseException):
        record: dict[str, Any] = {"message": _safe_str(error), "name": _type_name(error)}
        err_type = getattr(error, "type", None) if isinstance(error, StepworkError) else None
        if isinstance(err_type, str):
            record["type"] = err_type
        try:
            record["stack"] = _stack(error)
        except BaseException:
            record["stack"] = f"{record['name']}: {record['message']}"
        return record
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        record = {"name": "Error", "stack": ""}
        for key, val in error.items():
            record[str(key)] = val if isinstance(val, (str, int, float, bool, type(None))) else _safe_str(val)
        return record
    if isinstance(error, str):
        message = error  # Medusa quotes it ("\"x\""); a Python user expects the text itself
    else:
        try:
            message = json.dumps(error, default=str, allow_nan=False)
        except (TypeError, ValueError):
            message = "Unknown non-serializable error"
    return {"message": message, "name": "Error", "stack": ""}
