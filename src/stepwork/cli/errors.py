"""How the command line fails: one readable line on stderr and an exit code, never a traceback.

Exit codes::

    0    success
    1    a failed operation (a run that failed or was reverted, an unreachable database, ...)
    2    bad usage or bad input (unknown option, invalid JSON, module or workflow not found, ...)
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import re

from stepwork.errors import StepworkError

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_USAGE", "CliError", "describe", "exit_code_of", "one_line"]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_USAGE_TYPES = {StepworkError.Types.INVALID_DATA.value, StepworkError.Types.INVALID_ARGUMENT.value}


class CliError(Exception):
    """A failure the command reports as ``error: {message}`` with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    @classmethod
    def usage(cls, message: str) -> CliError:
        """A bad-input error (exit code 2)."""
        return cls(message, EXIT_USAGE)


def one_line(text: str) -> str:
    """``text`` with its whitespace runs (newlines included) folded into single spaces."""
    return re.sub(r"\s+", " ", text).strip()


def describe(exc: BaseException) -> str:
    """The one-line message for an error (its type name when it has no message)."""
    if isinstance(exc, CliError | StepworkError):
        return one_line(exc.message)
    try:
        text = str(exc)
    except Exception:
        text = ""
    name = type(exc).__name__
    return one_line(f"{name}: {text}" if text else name)


def exit_code_of(exc: BaseException) -> int:
    """The exit code an error ends the command with."""
    if isinstance(exc, CliError):
        return exc.exit_code
    if isinstance(exc, StepworkError) and exc.type in _USAGE_TYPES:
        return EXIT_USAGE
    return EXIT_FAILED
