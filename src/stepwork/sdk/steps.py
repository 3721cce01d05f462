"""Steps: ``create_step`` and the ``@step`` decorator (docs/steps.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar, overload

from stepwork.engine.compiled import Handler, adapt_arity, is_coroutine_callable
from stepwork.engine.context import StepContext
from stepwork.engine.step_response import UNSET, StepResponse
from stepwork.errors import StepworkError
from stepwork.orchestration.definition import StepOptions, parse_step_options
from stepwork.sdk.builder import StepEntry, StepRef, current_builder
from stepwork.sdk.references import Ref

__all__ = ["Step", "create_step", "step"]

I = TypeVar("I")  # noqa: E741 - input type, mirrors Medusa's generics
O = TypeVar("O")  # noqa: E741
F = TypeVar("F", bound=Callable[..., Any])
_INVALID = StepworkError.Types.INVALID_DATA


def _check_callable(fn: object, what: str, step_name: str) -> None:
    if not callable(fn):
        raise StepworkError(_INVALID, f'The {what} function of step "{step_name}" must be callable, '
                                      f"got {fn!r}.")


def _split_config(name_or_config: str | Mapping[str, Any], fn: Callable[..., Any] | None) -> tuple[str, dict[str, Any]]:
    if isinstance(name_or_config, str):
        return name_or_config, {}
    if isinstance(name_or_config, Mapping):
        options = dict(name_or_config)
        name = options.pop("name", None)
        if name is None and fn is not None:
            name = getattr(fn, "__name__", None)
        if not isinstance(name, str) or not name:
            raise StepworkError(_INVALID, f'A step configuration needs a "name", got {dict(name_or_config)!r}.')
        return name, options
    raise StepworkError(_INVALID, "A step needs a name (str) or a configuration mapping with \"name\", got "
                                  f"{name_or_config!r}.")


class Step(Generic[I, O]):
    """A step: an invoke function, an optional compensation, and options.

    Call it inside a composer to add it to the workflow; the call returns a reference to its output.
    """

    __slots__ = ("_compensate", "_compensate_is_coro", "_invoke", "_invoke_is_coro", "_options",
                 "_raw_compensate", "_raw_invoke")

    def __init__(self, name: str, invoke: Callable[..., Any], compensate: Callable[..., Any] | None = None,
                 options: Mapping[str, Any] | None = None) -> None:
        _check_callable(invoke, "invoke", name)
        self._options: StepOptions = parse_step_options(name, dict(options or {}))
        self._raw_invoke = invoke
        self._invoke: Handler = adapt_arity(invoke)
        self._invoke_is_coro = is_coroutine_callable(invoke)
        self._raw_compensate: Callable[..., Any] | None = None
        self._compensate: Handler | None = None
        self._compensate_is_coro = False
        if compensate is not None:
            self._set_compensate(compensate)

    def _set_compensate(self, fn: Callable[..., Any]) -> None:
        _check_callable(fn, "compensate", self.name)
        self._raw_compensate = fn
        self._compensate = adapt_arity(fn)
        self._compensate_is_coro = is_coroutine_callable(fn)

    @property
    def name(self) -> str:
        """The step's name."""
        return self._options.name

    @property
    def options(self) -> StepOptions:
        """The step's validated options."""
        return self._options

    @property
    def invoke_function(self) -> Callable[..., Any]:
        """The invoke function as given."""
        return self._raw_invoke

    @property
    def compensate_function(self) -> Callable[..., Any] | None:
        """The compensation function as given, or ``None``."""
        return self._raw_compensate

    def compensate(self, fn: F) -> F:
        """Decorator: set ``fn`` as this step's compensation; returns ``fn`` unchanged."""
        if self._compensate is not None:
            raise StepworkError(_INVALID, f'Step "{self.name}" already has a compensation function.')
        self._set_compensate(fn)
        return fn

    def __call__(self, input: I | Ref[I] = UNSET) -> StepRef[O]:
        builder = current_builder()
        if builder is None:
            raise StepworkError(_INVALID, f'Step "{self.name}" was called outside a workflow definition. '
                                          "createStep/create_step steps must be used inside a workflow "
                                          "definition (the composer given to create_workflow or @workflow).")
        entry = StepEntry(self.name, self._options, self._invoke, self._invoke_is_coro, self._compensate,
                          self._compensate_is_coro, None if input is UNSET else input, builder.conditions,
                          raw_invoke=self._raw_invoke)
        return builder.add_step(entry)

    def __repr__(self) -> str:
        return f"Step({self.name!r})"


InvokeAsyncResp = Callable[[I, StepContext], Awaitable[StepResponse[O, Any]]]
InvokeAsyncMixed = Callable[[I, StepContext], Awaitable[O | StepResponse[O, Any]]]
InvokeResp = Callable[[I, StepContext], StepResponse[O, Any]]
InvokeMixed = Callable[[I, StepContext], O | StepResponse[O, Any]]
Invoke1AsyncResp = Callable[[I], Awaitable[StepResponse[O, Any]]]
Invoke1AsyncMixed = Callable[[I], Awaitable[O | StepResponse[O, Any]]]
Invoke1Resp = Callable[[I], StepResponse[O, Any]]
Invoke1Mixed = Callable[[I], O | StepResponse[O, Any]]
Invoke0 = Callable[[], O | StepResponse[O, Any] | Awaitable[O | StepResponse[O, Any]]]


@overload
def create_step(name_or_config: str | Mapping[str, Any], invoke: InvokeAsyncResp[I, O],
                compensate: Callable[..., Any] | None = None) -> Step[I, O]: ...
@overload
def create_step(name_or_config: str | Mapping[str, Any], invoke: InvokeAsyncMixed[I, O],
                compensate: Callable[..., Any] | None = None) -> Step[I, O]: ...
@overload
def create_step(name_or_config: str | Mapping[str, Any], invoke: InvokeResp[I, O],
                compensate: Callable[..., Any] | None = None) -> Step[I, O]: ...
@overload
def create_step(name_or_config: str | Mapping[str, Any], invoke: InvokeMixed[I, O],
                compensate: Callable[..., Any] | None = None) -> Step[I, O]: ...
@overload
def create_step(name_or_config: str | Mapping[str, Any], invoke: Invoke1AsyncResp[I, O],
                compensate: Callable[..., Any] | None = None) -> Step[I, O]: ...
@overload
def create_step(name_or_config: str | Mapping[str, Any], invoke: Invoke1AsyncMixed[I, O],
                compensate: Callable[..., Any] | None = None) -> Step[I, O]: ...
@overload
def create_step(name_or_config: str | Mapping[str, Any], invoke: Invoke1Resp[I, O],
                compensate: Callable[..., Any] | None = None) -> Step[I, O]: ...
@overload
def create_step(name_or_config: str | Mapping[str, Any], invoke: Invoke1Mixed[I, O],
                compensate: Callable[..., Any] | None = None) -> Step[I, O]: ...
@overload
def create_step(name_or_config: str | Mapping[str, Any], invoke: Invoke0[O],
                compensate: Callable[..., Any] | None = None) -> Step[None, O]: ...
def create_step(name_or_config: str | Mapping[str, Any], invoke: Callable[..., Any],
                compensate: Callable[..., Any] | None = None) -> Step[Any, Any]:
    """Create a step from an invoke function and an optional compensation (docs/steps.md).

    ``name_or_config`` is the step name or a mapping with ``"name"`` and step options. ``invoke(input,
    ctx)`` and ``compensate(compensate_input, ctx)`` may be plain or ``async`` functions (they may
    also take fewer arguments). Input and output types are inferred from ``invoke``'s annotations.
    """
    name, options = _split_config(name_or_config, invoke)
    return Step(name, invoke, compensate, options)


class _StepDecorator:
    __slots__ = ("_config",)

    def __init__(self, config: str | Mapping[str, Any] | None) -> None:
        self._config = config

    @overload
    def __call__(self, fn: InvokeAsyncResp[I, O]) -> Step[I, O]: ...
    @overload
    def __call__(self, fn: InvokeAsyncMixed[I, O]) -> Step[I, O]: ...
    @overload
    def __call__(self, fn: InvokeResp[I, O]) -> Step[I, O]: ...
    @overload
    def __call__(self, fn: InvokeMixed[I, O]) -> Step[I, O]: ...
    @overload
    def __call__(self, fn: Invoke1AsyncResp[I, O]) -> Step[I, O]: ...
    @overload
    def __call__(self, fn: Invoke1AsyncMixed[I, O]) -> Step[I, O]: ...
    @overload
    def __call__(self, fn: Invoke1Resp[I, O]) -> Step[I, O]: ...
    @overload
    def __call__(self, fn: Invoke1Mixed[I, O]) -> Step[I, O]: ...
    @overload
    def __call__(self, fn: Invoke0[O]) -> Step[None, O]: ...
    def __call__(self, fn: Callable[..., Any]) -> Step[Any, Any]:
        config = self._config
        if config is None:
            config = {"name": getattr(fn, "__name__", None)}
        name, options = _split_config(config, fn)
        return Step(name, fn, None, options)


def step(name_or_config: str | Mapping[str, Any] | None = None) -> _StepDecorator:
    """Decorator form of :func:`create_step`: ``@step("name")`` or ``@step({"name": ..., **options})``.

    Add a compensation with ``@that_step.compensate`` on another function.
    """
    if callable(name_or_config):
        raise StepworkError(_INVALID, "Write @step(\"name\") (or @step() to use the function's name), "
                                      "not a bare @step.")
    return _StepDecorator(name_or_config)
