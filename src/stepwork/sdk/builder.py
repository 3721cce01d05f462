"""The composition scope: what step calls, ``transform``, ``when`` and hooks record while a composer runs.

A composer runs once, inside a :class:`WorkflowBuilder`. Each step call appends a
:class:`StepEntry` (its own stage); ``parallelize`` merges stages; ``transform`` and ``when``
add lazy nodes. :meth:`WorkflowBuilder.finalize` checks names, builds the plan and compiles every
template into resolvers.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from stepwork.engine.compiled import CompiledWorkflow, Handler, StepHandler
from stepwork.engine.values import LazyNode, ValueSource
from stepwork.errors import StepworkError
from stepwork.orchestration.definition import Plan, StepOptions, WorkflowOptions, parse_step_options
from stepwork.sdk.references import Compiled, Ref, compile_value

__all__ = ["HookHandlers", "StepEntry", "StepRef", "WorkflowBuilder", "current_builder", "require_builder"]

T_co = TypeVar("T_co", covariant=True)
_INVALID = StepworkError.Types.INVALID_DATA


class StepEntry:
    """A step as placed in a workflow being composed."""

    __slots__ = ("base", "compensate", "compensate_is_coro", "conditions", "index", "invoke",
                 "invoke_is_coro", "kind", "name", "overrides", "raw_invoke", "template")

    def __init__(self, name: str, base: StepOptions, invoke: Handler, invoke_is_coro: bool,
                 compensate: Handler | None, compensate_is_coro: bool, template: Any,
                 conditions: tuple[LazyNode, ...], kind: str = "step",
                 raw_invoke: Callable[..., Any] | None = None) -> None:
        self.name = name
        self.raw_invoke = raw_invoke if raw_invoke is not None else invoke
        self.base = base
        self.overrides: dict[str, Any] = {}
        self.invoke = invoke
        self.invoke_is_coro = invoke_is_coro
        self.compensate = compensate
        self.compensate_is_coro = compensate_is_coro
        self.template = template
        self.conditions = conditions
        self.kind = kind
        self.index = -1

    def __repr__(self) -> str:
        return f"step {self.name!r}"


class StepRef(Ref[T_co]):
    """The reference a step call returns; ``.config(...)`` renames or configures that step."""

    __slots__ = ()

    def config(self, name: str | None = None, **options: Any) -> StepRef[T_co]:
        """Rename the step (``name=``) and/or override its options; returns the same reference."""
        entry: StepEntry = self._sw_source
        if name is not None:
            if not isinstance(name, str) or not name:
                raise StepworkError(_INVALID, f"A step name must be a non-empty string, got {name!r}.")
            options["name"] = name
        # Validate now, so a typo points at this line rather than the end of the composer.
        parse_step_options(entry.name, options, base=entry.base, owner=f'step "{entry.name}"')
        if "name" in options:
            entry.name = options["name"]
        entry.overrides.update(options)
        return self


class HookHandlers:
    """The hooks a workflow declares and the handlers registered for them."""

    __slots__ = ("handlers", "names")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.handlers: dict[str, tuple[Handler, Handler | None]] = {}


class _LazySpec:
    __slots__ = ("compiled", "fns", "node", "template")

    def __init__(self, node: LazyNode, template: Any, fns: Sequence[Callable[..., Any]]) -> None:
        self.node = node
        self.template = template
        self.fns = tuple(fns)
        self.compiled: Compiled | None = None


class WorkflowBuilder:
    """Collects a workflow's steps and lazy values while its composer runs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stages: list[list[StepEntry]] = []
        self.lazies: list[_LazySpec] = []
        self.conditions: tuple[LazyNode, ...] = ()
        self.open_whens: list[object] = []
        self.when_count = 0
        self.hook_registry = HookHandlers()

    # -- recording --------------------------------------------------------------------------------

    def add_step(self, entry: StepEntry) -> StepRef[Any]:
        """Append a step as a stage of its own and return its reference."""
        self.stages.append([entry])
        return StepRef(entry)

    def add_lazy(self, label: str, template: Any, fns: Sequence[Callable[..., Any]]) -> LazyNode:
        """Add a value computed at run time (at most once per run) from ``template`` through ``fns``."""
        node = LazyNode(len(self.lazies), label)
        self.lazies.append(_LazySpec(node, template, fns))
        return node

    def merge_parallel(self, refs: Sequence[Any]) -> None:
        """Turn the stages of the given (just created) steps into one concurrent stage."""
        entries: list[StepEntry] = []
        for ref in refs:
            if not isinstance(ref, StepRef):
                raise StepworkError(_INVALID, "parallelize(...) takes the references returned by step "
                                              f"calls, got {ref!r}.")
            entries.append(ref._sw_source)
        tail = self.stages[-len(entries):] if entries else []
        tail_entries = [e for stage in tail for e in stage]
        if (len(tail) != len(entries) or any(len(s) != 1 for s in tail)
                or {id(e) for e in tail_entries} != {id(e) for e in entries}):
            raise StepworkError(_INVALID, "parallelize(...) must wrap step calls made in its own arguments, "
                                          "e.g. parallelize(step_a(x), step_b(y)); got "
                                          f"{', '.join(repr(e) for e in entries)}.")
        del self.stages[-len(entries):]
        self.stages.append(entries)

    # -- finishing --------------------------------------------------------------------------------

    def finalize(self, options: WorkflowOptions, result: Any) -> CompiledWorkflow:
        """Check the composition, build the plan and compile every template."""
        if self.open_whens:
            raise StepworkError(_INVALID, f'Workflow "{self.name}": ".then" is missing after a "when" '
                                          "condition; write when(values, condition).then(lambda: ...).")
        seen: dict[str, StepEntry] = {}
        index = 0
        for stage in self.stages:
            for entry in stage:
                if entry.name in seen:
                    raise StepworkError(
                        StepworkError.Types.DUPLICATE_ERROR,
                        f'Step "{entry.name}" is already defined in workflow "{self.name}". A step may appear '
                        "once per workflow: rename the second use with .config(name=\"...\").")
                seen[entry.name] = entry
                entry.index = index
                index += 1
        step_options = [[self._options_of(e) for e in stage] for stage in self.stages]
        plan = Plan(options, step_options)
        for spec in self.lazies:
            self._compile_lazy(spec)
        handlers: list[StepHandler] = []
        for stage in self.stages:
            for entry in stage:
                compiled = compile_value(entry.template)
                self._check_parallel_inputs(entry, stage, compiled)
                handlers.append(StepHandler(
                    plan.steps[entry.index], entry.invoke, entry.invoke_is_coro, entry.compensate,
                    entry.compensate_is_coro, compiled.read, tuple(compiled.lazy), entry.conditions,
                    entry.kind, entry.raw_invoke, async_in_definition=entry.base.is_async))
        compiled_result = compile_value(result)
        return CompiledWorkflow(plan, tuple(handlers), compiled_result.read, tuple(compiled_result.lazy))

    def _options_of(self, entry: StepEntry) -> StepOptions:
        overrides = dict(entry.overrides)
        overrides.pop("name", None)
        if entry.compensate is None and "no_compensation" not in overrides:
            overrides["no_compensation"] = True
        return parse_step_options(entry.name, overrides, base=entry.base)

    def _check_parallel_inputs(self, entry: StepEntry, stage: list[StepEntry], compiled: Compiled) -> None:
        if len(stage) == 1:
            return
        needed = list(compiled.steps)
        for node in compiled.lazy:
            spec = self.lazies[node.key]
            if spec.compiled is not None:
                needed.extend(spec.compiled.steps)
        for other in stage:
            if other is not entry and any(s is other for s in needed):
                raise StepworkError(_INVALID, f'Step "{entry.name}" reads the output of step "{other.name}", '
                                              "but parallelize(...) runs them at the same time. Call "
                                              f'"{other.name}" before the parallelize(...).')

    def _compile_lazy(self, spec: _LazySpec) -> None:
        compiled = compile_value(spec.template)
        spec.compiled = compiled
        node = spec.node
        node.deps = tuple(compiled.lazy)
        read = compiled.read
        fns = spec.fns
        if node.label.startswith("when"):
            condition = fns[0]
            if inspect.iscoroutinefunction(condition):
                node.is_async = True

                async def compute_when_async(s: ValueSource) -> bool:
                    return bool(await condition(read(s)))
                node.compute = compute_when_async
            else:
                node.compute = lambda s: _truth(condition(read(s)))
            return
        if any(inspect.iscoroutinefunction(f) for f in fns):
            node.is_async = True

            async def compute_async(s: ValueSource) -> Any:
                value = read(s)
                for fn in fns:
                    value = fn(value)
                    if inspect.isawaitable(value):
                        value = await value
                return value
            node.compute = compute_async
        else:
            def compute(s: ValueSource) -> Any:
                value = read(s)
                for fn in fns:
                    value = fn(value)
                return value
            node.compute = compute


def _truth(value: Any) -> Any:
    # An async condition written as a plain function returning a coroutine is awaited by the runner.
    return value if inspect.isawaitable(value) else bool(value)


_local = threading.local()


def _stack() -> list[WorkflowBuilder]:
    stack: list[WorkflowBuilder] | None = getattr(_local, "stack", None)
    if stack is None:
        stack = []
        _local.stack = stack
    return stack


def current_builder() -> WorkflowBuilder | None:
    """The builder of the composer running on this thread, if any."""
    stack = _stack()
    return stack[-1] if stack else None


def require_builder(what: str) -> WorkflowBuilder:
    """The current builder, or ``StepworkError`` saying ``what`` must be used inside a workflow."""
    builder = current_builder()
    if builder is None:
        raise StepworkError(_INVALID, f"{what} must be used inside a workflow definition (the composer "
                                      "function given to create_workflow or @workflow).")
    return builder


class composing:
    """Context manager that makes ``builder`` current while a composer runs."""

    def __init__(self, builder: WorkflowBuilder) -> None:
        self.builder = builder

    def __enter__(self) -> WorkflowBuilder:
        _stack().append(self.builder)
        return self.builder

    def __exit__(self, *exc: object) -> None:
        _stack().pop()
