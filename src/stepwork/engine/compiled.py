"""What a composed workflow hands to the engine: its plan plus the callables and resolvers of each step.

The plan (``stepwork.orchestration``) is pure, JSON-serializable data; these objects hold the
Python side that cannot be stored: the user's functions and the compiled input resolvers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from stepwork.engine.typed_values import typed_converter, typed_reader
from stepwork.engine.values import LazyNode, ValueSource
from stepwork.orchestration.definition import Plan, PlanStep

__all__ = ["CompiledWorkflow", "OneArg", "StepHandler", "adapt_arity", "is_coroutine_callable"]

Handler = Callable[[Any, Any], Any]


def is_coroutine_callable(fn: Callable[..., Any]) -> bool:
    """True for ``async def`` functions, partials of them and objects with an ``async __call__``."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - looking for an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def adapt_arity(fn: Callable[..., Any]) -> Handler:
    """Call ``fn`` with as many of ``(input, ctx)`` as it accepts (Medusa allows fewer)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return fn
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind is p.VAR_POSITIONAL for p in params) or len(positional) >= 2:
        return fn
    if len(positional) == 1:
        return OneArg(fn)
    return lambda value, ctx: fn()


UNKNOWN: Any = object()


class OneArg:
    """A function of the input alone, callable as ``(input, ctx)``; the runner calls ``fn`` directly."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, value: Any, ctx: Any) -> Any:
        return self.fn(value)


class StepHandler:
    """The executable side of one step."""

    __slots__ = ("async_in_definition", "comp_convert", "compensate", "compensate1", "compensate_is_coro",
                 "conditions", "fast", "invoke", "invoke1",
                 "invoke_is_coro", "kind", "name", "output_type", "pre", "raw_invoke", "read_input", "step")

    def __init__(self, step: PlanStep, invoke: Handler, invoke_is_coro: bool,
                 compensate: Handler | None, compensate_is_coro: bool,
                 read_input: Callable[[ValueSource], Any], pre: tuple[LazyNode, ...],
                 conditions: tuple[LazyNode, ...], kind: str, raw_invoke: Callable[..., Any] | None = None,
                 async_in_definition: bool | None = None) -> None:
        self.step = step
        # ``async`` given where the step was created (not only at its call site): a StepResponse
        # returned by its invoke then completes it (Medusa's inference).
        self.async_in_definition = step.options.is_async if async_in_definition is None else async_in_definition
        self.raw_invoke = raw_invoke if raw_invoke is not None else invoke
        self.output_type: Any = UNKNOWN  # the annotated output type, found when first needed
        self.name = step.name
        self.invoke = invoke
        self.invoke_is_coro = invoke_is_coro
        self.compensate = None if step.options.no_compensation else compensate
        # Functions of the input alone are called without building a StepContext.
        self.invoke1 = invoke.fn if isinstance(invoke, OneArg) else None
        self.compensate1 = self.compensate.fn if isinstance(self.compensate, OneArg) else None
        self.compensate_is_coro = compensate_is_coro
        convert = typed_converter(self.raw_invoke, f'The input of step "{step.name}"')
        # The input as the invoke function is annotated (a model stays a model after a wait).
        self.read_input = read_input if convert is None else typed_reader(read_input, convert)
        self.comp_convert = typed_converter(self.compensate, f'The compensation input of step "{step.name}"')
        self.pre = pre
        self.conditions = conditions
        self.kind = kind
        opts = step.options
        # Steps the runner may call on its fast path: nothing to evaluate or enforce around the call.
        self.fast = (not pre and not conditions and opts.timeout is None and not opts.thread
                     and not opts.is_async)


class CompiledWorkflow:
    """A workflow ready to run: plan, step handlers, and the resolver of its result."""

    __slots__ = ("handlers", "name", "plan", "read_result", "result_pre")

    def __init__(self, plan: Plan, handlers: tuple[StepHandler, ...],
                 read_result: Callable[[ValueSource], Any], result_pre: tuple[LazyNode, ...]) -> None:
        self.name = plan.workflow_id
        self.plan = plan
        self.handlers = handlers
        self.read_result = read_result
        self.result_pre = result_pre
