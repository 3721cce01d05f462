"""Composition primitives: ``transform``, ``when(...).then(...)`` and ``parallelize`` (docs/workflows.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar, overload

from stepwork.errors import StepworkError
from stepwork.orchestration.definition import parse_step_options
from stepwork.sdk.builder import StepEntry, StepRef, WorkflowBuilder, require_builder
from stepwork.sdk.references import Ref

__all__ = ["When", "parallelize", "transform", "when"]

T = TypeVar("T")
R = TypeVar("R")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")
E = TypeVar("E")
F = TypeVar("F")
_INVALID = StepworkError.Types.INVALID_DATA


@overload
def transform(values: Any, fn: Callable[[Any], Awaitable[R]], /) -> Ref[R]: ...
@overload
def transform(values: Any, fn: Callable[[Any], R], /) -> Ref[R]: ...
@overload
def transform(values: Any, fn1: Callable[[Any], Any], fn2: Callable[[Any], Any], /,
              *fns: Callable[[Any], Any]) -> Ref[Any]: ...
def transform(values: Any, /, *fns: Callable[[Any], Any]) -> Ref[Any]:
    """Compute a value from ``values`` at run time: ``fns[0](resolved)``, then each next function.

    Functions may be ``async``. The value is computed lazily, when a step or the result first needs
    it, and at most once per run. Returns a reference.
    """
    builder = require_builder("transform(...)")
    if not fns:
        raise StepworkError(_INVALID, "transform(values, fn, ...) needs at least one function.")
    for fn in fns:
        if not callable(fn):
            raise StepworkError(_INVALID, f"transform(...) functions must be callable, got {fn!r}.")
    return Ref(builder.add_lazy("transform", values, fns))


class When(Generic[T]):
    """A condition waiting for ``.then(fn)``; see :func:`when`."""

    __slots__ = ("_builder", "_condition", "_done", "_name", "_values")

    def __init__(self, builder: WorkflowBuilder, name: str | None, values: Any,
                 condition: Callable[[Any], Any]) -> None:
        self._builder = builder
        self._name = name
        self._values = values
        self._condition = condition
        self._done = False
        builder.open_whens.append(self)

    def then(self, fn: Callable[[], R]) -> R | None:
        """Run ``fn`` now (definition time); the steps it creates run only when the condition holds.

        Returns what ``fn`` returns: a step's reference, or, for any other value, the reference of
        a step that passes that value on. When the condition is false it resolves to ``None``.
        """
        builder = self._builder
        if self._done:
            raise StepworkError(_INVALID, "when(...).then(...) was already called for this condition.")
        if not callable(fn):
            raise StepworkError(_INVALID, f"when(...).then(fn) needs a function, got {fn!r}.")
        self._done = True
        builder.open_whens.remove(self)
        builder.when_count += 1
        number = builder.when_count
        node = builder.add_lazy(f"when-{number}", self._values, (self._condition,))
        outer = builder.conditions
        builder.conditions = (*outer, node)
        try:
            result = fn()
            if result is None or isinstance(result, StepRef):
                return result
            name = self._name or f"when-then-{number}"
            entry = StepEntry(name, parse_step_options(name, {}), lambda value, ctx: value, False, None, False,
                              result, builder.conditions, kind="when")
            return builder.add_step(entry)  # type: ignore[return-value]
        finally:
            builder.conditions = outer


@overload
def when(values: Any, condition: Callable[[Any], Any], /) -> When[Any]: ...
@overload
def when(name: str, values: Any, condition: Callable[[Any], Any], /) -> When[Any]: ...
def when(*args: Any) -> When[Any]:
    """``when(values, condition).then(fn)`` or ``when(name, values, condition).then(fn)``.

    ``condition(resolved_values)`` (plain or ``async``) is evaluated at run time, before the steps
    created inside ``fn``; when it is false those steps end ``skipped``.
    """
    builder = require_builder("when(...)")
    if len(args) == 2:
        name, (values, condition) = None, args
    elif len(args) == 3:
        name, values, condition = args
        if not isinstance(name, str) or not name:
            raise StepworkError(_INVALID, f"when(name, values, condition): name must be a string, got {name!r}.")
    else:
        raise StepworkError(_INVALID, "when(...) takes (values, condition) or (name, values, condition), "
                                      f"got {len(args)} arguments.")
    if not callable(condition):
        raise StepworkError(_INVALID, f'"when condition" must be a function, got {condition!r}.')
    return When(builder, name, values, condition)


@overload
def parallelize(r0: StepRef[A], /) -> tuple[StepRef[A]]: ...
@overload
def parallelize(r0: StepRef[A], r1: StepRef[B], /) -> tuple[StepRef[A], StepRef[B]]: ...
@overload
def parallelize(r0: StepRef[A], r1: StepRef[B], r2: StepRef[C], /) -> tuple[StepRef[A], StepRef[B], StepRef[C]]: ...
@overload
def parallelize(
    r0: StepRef[A], r1: StepRef[B], r2: StepRef[C], r3: StepRef[D], /,
) -> tuple[StepRef[A], StepRef[B], StepRef[C], StepRef[D]]: ...
@overload
def parallelize(
    r0: StepRef[A], r1: StepRef[B], r2: StepRef[C], r3: StepRef[D], r4: StepRef[E], /,
) -> tuple[StepRef[A], StepRef[B], StepRef[C], StepRef[D], StepRef[E]]: ...
@overload
def parallelize(
    r0: StepRef[A], r1: StepRef[B], r2: StepRef[C], r3: StepRef[D], r4: StepRef[E], r5: StepRef[F], /,
) -> tuple[StepRef[A], StepRef[B], StepRef[C], StepRef[D], StepRef[E], StepRef[F]]: ...
@overload
def parallelize(*refs: StepRef[Any]) -> tuple[StepRef[Any], ...]: ...
def parallelize(*refs: StepRef[Any]) -> tuple[StepRef[Any], ...]:
    """Run the given steps concurrently; the next step starts when all of them have settled.

    Wrap the step calls themselves: ``a, b = parallelize(step_a(x), step_b(y))``. Returns the
    references in argument order.
    """
    builder = require_builder("parallelize(...)")
    if not refs:
        raise StepworkError(_INVALID, "parallelize(...) needs at least one step.")
    builder.merge_parallel(refs)
    return tuple(refs)

