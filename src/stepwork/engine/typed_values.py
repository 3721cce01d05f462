"""Values given to a step as the type its function is annotated with, on every path.

A step annotated ``def make(input: BrandIn, ctx)`` receives a ``BrandIn`` whether the run is
uninterrupted or continues after a wait from stored (plain JSON) values: a value that is not an
instance of the annotated model or dataclass is validated into it, or refused with ``invalid_data``
naming the step and the fields. Unannotated functions pay nothing: no reader is wrapped.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from stepwork.errors import StepworkError

__all__ = ["typed_converter", "typed_reader"]

_UNKNOWN: Any = object()


def _first_parameter(fn: Callable[..., Any]) -> inspect.Parameter | None:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return positional[0] if positional else None


def _annotation(fn: Callable[..., Any], param: str) -> Any:
    """The resolved annotation of ``fn``'s parameter ``param``; ``_UNKNOWN`` if it cannot be resolved."""
    try:
        return typing.get_type_hints(fn).get(param)
    except Exception:  # another annotation cannot be resolved (yet): try this one alone
        pass
    annotation = getattr(fn, "__annotations__", {}).get(param)
    if not isinstance(annotation, str):
        return annotation
    try:
        # The function's own annotation, evaluated in its module (as get_type_hints would).
        return eval(annotation, getattr(fn, "__globals__", {}))
    except Exception:
        return _UNKNOWN


def _model_class(annotation: Any) -> type | None:
    """The model or dataclass an annotation names (``Model | None`` included), else ``None``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        classes = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _model_class(classes[0]) if len(classes) == 1 else None
    if isinstance(annotation, type) and (issubclass(annotation, BaseModel) or dataclasses.is_dataclass(annotation)):
        return annotation
    return None


@lru_cache(maxsize=512)
def _adapter(cls: type) -> TypeAdapter[Any]:
    return TypeAdapter(cls)


class _Converter:
    """Validates a value into the class the function's first parameter is annotated with (found on
    first use: annotations may name classes defined after the step)."""

    __slots__ = ("fn", "param", "target", "what")

    def __init__(self, fn: Callable[..., Any], param: str, what: str) -> None:
        self.fn = fn
        self.param = param
        self.what = what
        self.target: Any = _UNKNOWN

    def __call__(self, value: Any) -> Any:
        target = self.target
        if target is _UNKNOWN:
            annotation = _annotation(self.fn, self.param)
            # Still unresolvable (a name that does not exist): values are passed as they are.
            target = self.target = None if annotation is _UNKNOWN else _model_class(annotation)
        if target is None or value is None or isinstance(value, target):
            return value
        try:
            return _adapter(target).validate_python(value)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(value)'}: {e['msg']}"
                                 for e in exc.errors())
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f"{self.what} does not fit {target.__name__}: {problems}.") from None


def typed_converter(fn: Callable[..., Any] | None, what: str) -> Callable[[Any], Any] | None:
    """A converter for the first argument of ``fn`` if that parameter is annotated, else ``None``."""
    if fn is None:
        return None
    raw = getattr(fn, "fn", fn)  # a function of the input alone, wrapped to take (input, ctx)
    param = _first_parameter(raw)
    if param is None or param.annotation is inspect.Parameter.empty:
        return None
    converter = _Converter(raw, param.name, what)
    annotation = _annotation(raw, param.name)
    if annotation is _UNKNOWN:  # a class not defined yet: resolved on first use
        return converter
    converter.target = _model_class(annotation)
    return converter if converter.target is not None else None  # not a model: nothing to do, ever


def typed_reader(read: Callable[[Any], Any], convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``read`` followed by ``convert``."""
    def read_typed(source: Any) -> Any:
        return convert(read(source))
    return read_typed
