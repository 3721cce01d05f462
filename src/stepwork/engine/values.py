"""Run-time values: lazy nodes (transforms, conditions) and the deep copy every step input gets.

The composition API (``stepwork.sdk``) compiles references into readers of these; the run loop
reads them. Nothing here knows about the builder.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
from collections.abc import Callable
from decimal import Decimal
from typing import Any, NoReturn, Protocol

from stepwork.errors import StepworkError

__all__ = ["ATOMS", "LazyNode", "LazySource", "ValueSource", "clone", "ensure", "lazy_value"]

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


class LazySource(ValueSource, Protocol):
    """A value source that also shares lazy values being computed (the run)."""

    inflight: dict[int, asyncio.Future[None]] | None


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


# Result types that are certainly not awaitable (skips inspect.isawaitable).
_PLAIN: frozenset[type] = frozenset({int, float, str, bool, type(None), dict, list, tuple, bytes})


async def lazy_value(source: LazySource, node: LazyNode) -> Any:
    """The value of a lazy node (transform or condition), computed at most once per run."""
    memo = source.memo
    if node.key not in memo:
        await ensure(source, (*node.deps, node))
    return memo[node.key]


async def ensure(source: LazySource, nodes: tuple[LazyNode, ...]) -> None:
    """Compute the lazy nodes not computed yet, in order, into ``source.memo``."""
    memo = source.memo
    for node in nodes:
        key = node.key
        if key in memo:
            continue
        inflight = source.inflight
        if inflight is not None and key in inflight:
            await inflight[key]  # a parallel step is computing it: share its value (or error)
            continue
        value = node.compute(source)
        if node.is_async or (value.__class__ not in _PLAIN and inspect.isawaitable(value)):
            # Parallel steps may need the same value meanwhile: they wait on this future.
            if inflight is None:
                inflight = source.inflight = {}
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            inflight[key] = future
            try:
                value = await value
            except BaseException as exc:
                future.set_exception(exc)
                future.exception()  # retrieved here, so no "never retrieved" warning
                raise
            finally:
                if not future.done():
                    future.set_result(None)
            memo[key] = value
            continue
        memo[key] = value
