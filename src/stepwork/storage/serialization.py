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
import sys
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


class _Unstorable(Exception):
    """Raised where a part of a value cannot be stored; the containers it unwinds through add their
    key to ``path`` (nothing is tracked while a value converts, so this costs nothing then)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why
        self.path: list[str | int] = []  # innermost first

    def describe(self) -> str:
        if not self.path:
            return self.why
        keys = [f"[{k!r}]" if isinstance(k, int) else f"[{json.dumps(k, ensure_ascii=False)}]"
                for k in reversed(self.path)]
        shown = "".join(keys[:_PATH_SHOWN]) + ("[…]" if len(keys) > _PATH_SHOWN else "")
        return f"at {shown}, {self.why}"


MAX_DEPTH = 256  # deeper structures could not be read back by every JSON decoder
_PATH_SHOWN = 8  # keys of the path to a bad part named in the message (a cycle's path is long)
# Any int of at most this many bits has at most 640 decimal digits, the lowest limit Python allows
# on int-to-text conversion (sys.set_int_max_str_digits): only longer ones need looking at.
_SAFE_BITS = 2125


def to_jsonable(value: Any, where: str = "the value") -> Any:
    """``value`` as plain JSON values (dict, list, str, int, float, bool, None); raises
    ``StepworkError`` (``invalid_data``) naming ``where``, and the path to the part, on what cannot
    be stored exactly (including structures nested deeper than ``MAX_DEPTH`` levels, which is also
    how a structure that contains itself is caught, and integers too long for Python to write as
    text)."""
    try:
        return _jsonable(value, 0)
    except _Unstorable as exc:
        raise _fail(where, exc.describe()) from None


def _jsonable(value: Any, depth: int) -> Any:
    t = type(value)
    if t is str:
        if not value.isascii():
            _check_utf8(value)
        return value
    if t is int:
        if value.bit_length() > _SAFE_BITS:
            _check_int(value)
        return value
    if t is bool or value is None:
        return value
    if t is float:
        if not math.isfinite(value):
            raise _Unstorable(f"the float {value!r} has no JSON form")
        return value
    if t is dict or t is list or t is tuple or isinstance(value, (Mapping, list, tuple, set, frozenset)):
        if depth >= MAX_DEPTH:
            raise _Unstorable(f"it is nested more than {MAX_DEPTH} levels deep (or contains itself)")
        inner = depth + 1
        if t is dict or isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for k, v in value.items():
                if type(k) is not str:
                    if isinstance(k, Enum) and isinstance(k.value, str):
                        k = k.value
                    elif isinstance(k, str):
                        k = str(k)
                    else:
                        raise _Unstorable(f"the mapping key {k!r} is not a string")
                if not k.isascii():
                    _check_utf8(k)
                try:
                    out[k] = _jsonable(v, inner)
                except _Unstorable as exc:
                    exc.path.append(k)
                    raise
            return out
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        result: list[Any] = []
        append = result.append
        try:
            for v in items:
                append(_jsonable(v, inner))
        except _Unstorable as exc:
            exc.path.append(len(result))  # the index of the item that raised
            raise
        return result
    if isinstance(value, BaseModel):
        return _jsonable(value.model_dump(mode="json"), depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _Unstorable(f"the Decimal {value!r} has no JSON form")
        return str(value)
    if isinstance(value, Enum):
        return _jsonable(value.value, depth)
    if isinstance(value, (int, float, str)):  # subclasses of the JSON types
        return _jsonable(_base(value), depth)
    if isinstance(value, bytes):
        raise _Unstorable("bytes are not JSON; encode them (e.g. base64) first")
    raise _Unstorable(f"an object of type {t.__module__}.{t.__qualname__} is not JSON-serializable")


def _check_utf8(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Unstorable("a string contains a lone surrogate (not valid Unicode text)") from None


def _check_int(value: int) -> None:
    """Refuse an integer longer than Python converts to text (``sys.get_int_max_str_digits()``):
    JSON text could not be written, or read back."""
    limit = sys.get_int_max_str_digits()
    if not limit:
        return
    bits = abs(value).bit_length()
    if math.floor(bits * _LOG10_2) + 1 <= limit:  # the most digits so many bits can make
        return
    try:
        str(value)
    except ValueError:
        digits = math.floor((bits - 1) * _LOG10_2) + 1  # the fewest digits (no exact count: it is the slow part)
        raise _Unstorable(f"an integer of {digits:,} or more digits is longer than the {limit:,} digits Python "
                          "converts to text (sys.get_int_max_str_digits()); store it as a string") from None


_LOG10_2 = math.log10(2)


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


_INT_TEXT_LIMIT = 1 << 62  # far below the digit limit of int-to-text conversion


def encode(value: Any, where: str = "the value") -> str:
    """JSON text of ``value`` (see :func:`to_jsonable`)."""
    t = type(value)
    if t is int and -_INT_TEXT_LIMIT < value < _INT_TEXT_LIMIT:
        return int.__repr__(value)  # what the encoder writes, without its set-up (a step's output)
    if t in _PLAIN_TEXT:
        try:
            return _ENCODER.encode(value)
        except ValueError:  # an integer too long to write as text: to_jsonable says where
            pass
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
