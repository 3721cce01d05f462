"""Payloads of stored executions: to JSON text and back, the same on every backend.

Pydantic models, dataclasses, datetimes, dates, times, UUIDs, Decimals, sets and tuples are
converted to plain JSON values; on read, a value is restored to a step's annotated type with
pydantic. What JSON cannot hold exactly is refused before anything is written, with an error
naming where the value came from: NaN and infinities, non-string mapping keys that would be
silently converted, and objects of unknown types. Strings with ``\\u0000`` and integers of any
size round-trip exactly (payloads are stored as JSON text).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import uuid
from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, TypeAdapter

from stepwork.errors import StepworkError

__all__ = ["decode", "encode", "restore", "to_jsonable"]


def _fail(where: str, why: str) -> StepworkError:
    return StepworkError(StepworkError.Types.INVALID_DATA,
                         f"{where} cannot be stored: {why}. Stored executions keep JSON values (and pydantic "
                         "models, dataclasses, datetimes, UUIDs and Decimals, which are converted).")


MAX_DEPTH = 256  # deeper structures could not be read back by every JSON decoder


def to_jsonable(value: Any, where: str = "the value", _depth: int = 0) -> Any:
    """``value`` as plain JSON values (dict, list, str, int, float, bool, None); raises on what
    cannot be stored exactly (including structures nested deeper than ``MAX_DEPTH`` levels, which
    is also how a structure that contains itself is caught)."""
    t = type(value)
    if t is str:
        if not value.isascii():
            _check_utf8(value, where)
        return value
    if t is int or t is bool or value is None:
        return value
    if t is float:
        if not math.isfinite(value):
            raise _fail(where, f"the float {value!r} has no JSON form")
        return value
    if t is dict or t is list or t is tuple or isinstance(value, (Mapping, list, tuple, set, frozenset)):
        if _depth >= MAX_DEPTH:
            raise _fail(where, f"it is nested more than {MAX_DEPTH} levels deep (or contains itself)")
        depth = _depth + 1
        if t is dict or isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for k, v in value.items():
                if type(k) is not str:
                    if isinstance(k, Enum) and isinstance(k.value, str):
                        k = k.value
                    elif isinstance(k, str):
                        k = str(k)
                    else:
                        raise _fail(where, f"the mapping key {k!r} is not a string")
                if not k.isascii():
                    _check_utf8(k, where)
                out[k] = to_jsonable(v, where, depth)
            return out
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(v, where, depth) for v in items]
    if isinstance(value, BaseModel):
        return to_jsonable(value.model_dump(mode="json"), where, _depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, where, _depth)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _fail(where, f"the Decimal {value!r} has no JSON form")
        return str(value)
    if isinstance(value, Enum):
        return to_jsonable(value.value, where, _depth)
    if isinstance(value, (int, float, str)):  # subclasses of the JSON types
        return to_jsonable(_base(value), where, _depth)
    if isinstance(value, bytes):
        raise _fail(where, "bytes are not JSON; encode them (e.g. base64) first")
    raise _fail(where, f"an object of type {t.__module__}.{t.__qualname__} is not JSON-serializable")


def _check_utf8(value: str, where: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(where, "a string contains a lone surrogate (not valid Unicode text)") from None


def _base(value: int | float | str) -> int | float | str:
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_PLAIN_TEXT = {int: True, bool: True, type(None): True}


def encode(value: Any, where: str = "the value") -> str:
    """JSON text of ``value`` (see :func:`to_jsonable`)."""
    if type(value) in _PLAIN_TEXT:
        return _ENCODER.encode(value)
    return _ENCODER.encode(to_jsonable(value, where))


def decode(text: str | None) -> Any:
    """The value of JSON text (``None`` for ``None``)."""
    if text is None:
        return None
    return json.loads(text)


@lru_cache(maxsize=512)
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def restore(value: Any, annotation: Any) -> Any:
    """``value`` validated into ``annotation`` (a model, dataclass, datetime…); unchanged if it does
    not fit or there is no annotation."""
    if annotation is None or annotation is Any or value is None:
        return value
    try:
        return _adapter(annotation).validate_python(value)
    except Exception:  # an annotation pydantic cannot use, or a value that does not fit
        return value
