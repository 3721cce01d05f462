"""Hooks: points in a workflow where users inject their own step (docs/workflows.md, hooks)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from stepwork.engine.compiled import adapt_arity
from stepwork.errors import StepworkError
from stepwork.orchestration.definition import parse_step_options
from stepwork.sdk.builder import HookHandlers, StepEntry, StepRef, require_builder

__all__ = ["Hook", "Hooks", "create_hook"]

T = TypeVar("T")
_INVALID = StepworkError.Types.INVALID_DATA


class Hook(Generic[T]):
    """A hook declared in a composer. ``get_result()`` references what its handler returned."""

    __slots__ = ("_registry", "_validator", "name")

    def __init__(self, name: str, registry: HookHandlers, validator: Any) -> None:
        self.name = name
        self._registry = registry
        self._validator = validator

    def get_result(self) -> StepRef[Any]:
        """Add step ``get-{name}-result`` and return its reference: the handler's output, validated
        by the hook's ``result_validator`` (``None`` when no handler is registered)."""
        builder = require_builder("hook.get_result()")
        hook_entry = next((e for stage in builder.stages for e in stage
                           if e.kind == "hook" and e.name == self.name), None)
        if hook_entry is None:
            raise StepworkError(_INVALID, f'hook.get_result() of hook "{self.name}" must be called in the '
                                          "composer that created the hook.")
        validate = _validator_function(self._validator)
        name = f"get-{self.name}-result"
        entry = StepEntry(name, parse_step_options(name, {}),
                          lambda value, ctx: None if value is None else validate(value), False,
                          None, False, StepRef(hook_entry), builder.conditions, kind="hook-result")
        return builder.add_step(entry)

    def __repr__(self) -> str:
        return f"Hook({self.name!r})"


def _validator_function(validator: Any) -> Callable[[Any], Any]:
    if validator is None:
        return lambda value: value
    model_validate = getattr(validator, "model_validate", None)
    if inspect.isclass(validator) and callable(model_validate):
        return model_validate  # type: ignore[no-any-return]
    parse = getattr(validator, "parse", None)
    if callable(parse):
        return parse  # type: ignore[no-any-return]
    if callable(validator):
        return validator  # type: ignore[no-any-return]
    raise StepworkError(_INVALID, "A hook's result_validator must be a pydantic model, a callable, or an "
                                  f"object with .parse(value); got {validator!r}.")


def create_hook(name: str, values: Any = None, result_validator: Any = None) -> Hook[Any]:
    """Declare a hook named ``name`` receiving ``values``; a step that does nothing until a handler
    is registered with ``wf.hooks.<name>(invoke, compensate=None)``."""
    builder = require_builder("create_hook(...)")
    if not isinstance(name, str) or not name:
        raise StepworkError(_INVALID, f"A hook name must be a non-empty string, got {name!r}.")
    _validator_function(result_validator)  # reject a bad validator now, at definition time
    registry = builder.hook_registry
    registry.names.append(name)

    def invoke(value: Any, ctx: Any) -> Any:
        handler = registry.handlers.get(name)
        return None if handler is None else handler[0](value, ctx)

    def compensate(value: Any, ctx: Any) -> Any:
        handler = registry.handlers.get(name)
        if handler is None or handler[1] is None:
            return None
        return handler[1](value, ctx)

    entry = StepEntry(name, parse_step_options(name, {}), invoke, False, compensate, False, values,
                      builder.conditions, kind="hook")
    builder.add_step(entry)
    return Hook(name, registry, result_validator)


class Hooks:
    """``wf.hooks``: register a handler with ``wf.hooks.<name>(invoke, compensate=None)``."""

    __slots__ = ("_registry", "_workflow")

    def __init__(self, workflow: str, registry: HookHandlers) -> None:
        self._workflow = workflow
        self._registry = registry

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> Callable[..., None]:
        registry = self._registry
        if name not in registry.names:
            raise StepworkError(StepworkError.Types.NOT_FOUND,
                                f'Workflow "{self._workflow}" has no hook "{name}". '
                                f"Its hooks: {', '.join(registry.names) or '(none)'}.")

        def register(invoke: Callable[..., Any], compensate: Callable[..., Any] | None = None) -> None:
            if not callable(invoke):
                raise StepworkError(_INVALID, f'The handler of hook "{name}" must be callable, got {invoke!r}.')
            if compensate is not None and not callable(compensate):
                raise StepworkError(_INVALID, f'The compensation of hook "{name}" must be callable, '
                                              f"got {compensate!r}.")
            if name in registry.handlers:
                raise StepworkError(StepworkError.Types.DUPLICATE_ERROR,
                                    f"Cannot define multiple hook handlers for the {name} hook.")
            registry.handlers[name] = (adapt_arity(invoke), None if compensate is None
                                       else adapt_arity(compensate))
        return register

    def __contains__(self, name: object) -> bool:
        return name in self._registry.names

    def __iter__(self) -> Any:
        return iter(list(self._registry.names))

    def __repr__(self) -> str:
        return f"Hooks({self._registry.names!r})"

