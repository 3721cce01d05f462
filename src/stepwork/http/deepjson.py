"""JSON bodies of execution records, whatever their nesting depth.

Medusa's ``execution.definition`` nests each stage in the one before it (``{"next": {"next": …}}``),
so a 1,000-step workflow's record is over 1,000 levels deep: ``json.dumps`` (recursive, bounded by
the interpreter's recursion limit) raises ``RecursionError`` on it. :func:`record_body` encodes the
definition tree with an explicit stack and the rest (shallow, but megabytes for long workflows) with
``json.dumps`` in C, and joins them; the bytes are what ``JSONResponse`` would have sent.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

__all__ = ["dumps", "record_body"]


def dumps(value: Any) -> str:
    """``value`` as Starlette's ``JSONResponse`` encodes it (compact, UTF-8, no NaN)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


class _Raw(str):
    """Text already encoded, pushed on the stack between values."""


def _key(key: Any) -> str:
    return dumps({key: None})[1:-6]  # '"key"', as json.dumps writes a key of any type it accepts


def dumps_iteratively(value: Any) -> str:
    """``dumps(value)`` without recursion: containers are opened with an explicit stack, so any depth
    encodes (scalars and strings still go through ``json.dumps``)."""
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Raw):
            out.append(item)
        elif isinstance(item, dict):
            out.append("{")
            stack.append(_Raw("}"))
            entries = list(item.items())
            for i in range(len(entries) - 1, -1, -1):
                stack.append(entries[i][1])
                stack.append(_Raw(("," if i else "") + _key(entries[i][0]) + ":"))
        elif isinstance(item, (list, tuple)):
            out.append("[")
            stack.append(_Raw("]"))
            for i in range(len(item) - 1, -1, -1):
                stack.append(item[i])
                if i:
                    stack.append(_Raw(","))
        else:
            out.append(dumps(item))
    return "".join(out)


def record_body(envelope: str, record: dict[str, Any]) -> bytes:
    """The UTF-8 JSON of ``{envelope: record}``; the record's ``execution.definition``, if any, is
    encoded without recursion."""
    execution = record.get("execution")
    if not isinstance(execution, dict) or not isinstance(execution.get("definition"), (dict, list)):
        return dumps({envelope: record}).encode()
    mark = f"stepwork-definition-{secrets.token_hex(16)}"  # no record holds this string
    shallow = {**record, "execution": {**execution, "definition": mark}}
    text = dumps({envelope: shallow})
    return text.replace(dumps(mark), dumps_iteratively(execution["definition"]), 1).encode()
