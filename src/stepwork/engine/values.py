"""Run-time values: lazy nodes (transforms, conditions) and the deep copy every step input gets.

The composition API (``stepwork.sdk``) compiles references into readers of these; the run loop
reads them. Nothing here knows about the builder.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from typing import Any, NoReturn, Protocol

from stepwork.errors import StepworkError

__all__ = ["ATOMS", "LazyNode", "ValueSource", "clone"]

ATOMS: frozenset[type] = frozenset({int, float, str, bool, type(None), bytes, complex, Decimal})


def clone(value: Any) -> Any:
    """A deep copy of ``value``; immutable atoms are returned as they are.

    A value that cannot be deep-copied (it holds a lock, a socket…) is passed as it is.
    """
    t = type(value)
    if t in ATOMS:
        return value
    if t is dict:
        return {k: clone(v) for k, v in value.items()}
    if t is list:
        return [clone(v) for v in value]
    if t is tuple:
        return tuple([clone(v) for v in value])
    try:
        return copy.deepcopy(value)
    except Exception:
        return value


class ValueSource(Protocol):
    """What a resolver reads at run time (the engine's run object)."""

    payload: Any
    outputs: list[Any]
    memo: dict[int, Any]


class LazyNode:
    """A value computed at run time at most once per run (a transform, a ``when`` condition).

    ``deps`` are the lazy nodes its values need, in evaluation order; ``compute(source)`` returns
    the value, or an awaitable of it when ``is_async``.
    """

    __slots__ = ("compute", "deps", "is_async", "key", "label")

    def __init__(self, key: int, label: str) -> None:
        self.key = key
        self.label = label
        self.deps: tuple[LazyNode, ...] = ()
        self.is_async = False
        self.compute: Callable[[ValueSource], Any] = _not_compiled

    def __repr__(self) -> str:
        return f"<{self.label}>"


def _not_compiled(source: ValueSource) -> NoReturn:
    raise StepworkError(StepworkError.Types.UNEXPECTED_STATE, "A lazy value was read before compilation.")
