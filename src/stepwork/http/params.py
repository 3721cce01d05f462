"""Query strings and identifiers of the HTTP API, parsed and checked.

The list route takes Medusa's query (as ``qs`` writes it, so ``@medusajs/js-sdk`` works): ``q``;
``workflow_id``, ``transaction_id``, ``state`` (also ``id``, ``run_id``), each once or repeated
(``state=a&state=b``, ``state[]=a``, ``state[0]=a``) or with an operator (``state[$ne]=done``);
``created_at[$gt]=2025-01-01T00:00:00Z`` (also ``updated_at``); ``fields``; ``offset``; ``limit``;
``order`` (``created_at``, ``-created_at``, comma-separated); ``stale`` (``true``: only unfinished
executions whose workflow version no live worker has; ``false``: the others). Anything else is a 400.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from stepwork.errors import StepworkError

__all__ = ["DETAIL_FIELDS", "FIELDS", "LIST_FIELDS", "MAX_ID", "MAX_LIMIT", "MAX_OFFSET", "ListParams",
           "check_id", "parse_fields", "parse_list_query", "select", "single_values"]

_INVALID = StepworkError.Types.INVALID_DATA
MAX_ID = 256
MAX_LIMIT = 1000
MAX_OFFSET = 10**12
FIELDS = ("id", "workflow_id", "transaction_id", "run_id", "state", "execution", "context", "retention_time",
          "created_at", "updated_at", "deleted_at")
# Medusa's defaults (query-config): the list leaves the heavy records out, the detail has them.
LIST_FIELDS = ("id", "workflow_id", "transaction_id", "state", "created_at", "updated_at", "deleted_at")
DETAIL_FIELDS = ("id", "workflow_id", "transaction_id", "context", "execution", "state", "created_at",
                 "updated_at", "deleted_at")
_TEXT_FILTERS = ("id", "workflow_id", "transaction_id", "run_id", "state")
_TIME_FILTERS = ("created_at", "updated_at")
_SCALARS = ("q", "fields", "offset", "limit", "order", "with_deleted", "stale")
_OPERATORS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte")
_KEY = re.compile(r"^([A-Za-z_]+)((?:\[[^\[\]]*\])*)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_id(value: str, what: str) -> str:
    """``value`` if it is a usable identifier: 1 to 256 characters, no control characters."""
    if not value or len(value) > MAX_ID:
        raise StepworkError(_INVALID, f"{what} must be 1 to {MAX_ID} characters long, got {len(value)}.")
    if _CONTROL.search(value):
        raise StepworkError(_INVALID, f"{what} must not contain control characters.")
    return value


@dataclass(frozen=True)
class ListParams:
    """A parsed list query: engine filters, paging, order, and the fields to answer with."""

    filters: dict[str, Any]
    offset: int
    limit: int
    order: list[str] | None
    fields: tuple[str, ...]


def parse_fields(raw: str | None, defaults: Sequence[str]) -> tuple[str, ...]:
    """Medusa's ``fields``: ``a,b`` replaces the defaults, ``+a``/``-a`` add to or take from them
    (``*`` is every field); ``id`` is always included."""
    if raw is None or not raw.strip():
        return tuple(defaults)
    chosen: list[str] = []
    modified = list(defaults)
    replaced = False
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        sign, name = (item[0], item[1:]) if item[0] in "+-" else ("", item)
        names = list(FIELDS) if name == "*" else [name]
        for n in names:
            if n not in FIELDS:
                raise StepworkError(_INVALID, f'Unknown field "{n}" in fields. Fields: {", ".join(FIELDS)}.')
            if sign == "-":
                modified = [f for f in modified if f != n]
                chosen = [f for f in chosen if f != n]
            elif sign == "+":
                modified.append(n)
            else:
                replaced = True
                chosen.append(n)
    out = ["id", *chosen] if replaced else modified
    return tuple(dict.fromkeys(out))


def select(record: dict[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """The ``fields`` of a ``WorkflowExecution.to_dict()`` record."""
    return {f: record[f] for f in fields}


def single_values(items: Iterable[tuple[str, str]], allowed: Sequence[str]) -> dict[str, str]:
    """The query (``request.query_params.multi_items()``) of a route that takes each of ``allowed`` at
    most once: anything else, or a parameter given twice (``?fields=a&fields=b``), is a 400
    ``invalid_data`` naming it (a repeated one would otherwise silently be read as its last value)."""
    out: dict[str, str] = {}
    for name, value in items:
        if name not in allowed:
            takes = (f'only "{allowed[0]}"' if len(allowed) == 1 else ", ".join(f'"{a}"' for a in allowed)
                     if allowed else "no query parameters")
            raise StepworkError(_INVALID, f'Unknown query parameter "{name[:64]}"; this route takes {takes}.')
        if name in out:
            raise StepworkError(_INVALID, f'Query parameter "{name}" is given more than once; give it once '
                                          '(a list of fields is comma-separated: fields=a,b).'
                                if name == "fields" else f'Query parameter "{name}" is given more than once.')
        out[name] = value
    return out


def _time(value: str, what: str) -> float:
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.timestamp()
    except (ValueError, OverflowError, OSError):
        raise StepworkError(_INVALID, f'{what}: "{value[:64]}" is not an ISO-8601 time '
                                      '(e.g. 2025-01-31T12:00:00Z).') from None


def _int(value: str, name: str, low: int, high: int) -> int:
    if not re.fullmatch(r"\d{1,15}", value.strip()):
        raise StepworkError(_INVALID, f"{name} must be an integer from {low} to {high}, got {value[:32]!r}.")
    number = int(value)
    if not low <= number <= high:
        raise StepworkError(_INVALID, f"{name} must be an integer from {low} to {high}, got {number}.")
    return number


def parse_list_query(items: Iterable[tuple[str, str]]) -> ListParams:
    """The list route's query (``request.query_params.multi_items()``), validated."""
    scalars: dict[str, str] = {}
    filters: dict[str, Any] = {}
    for raw_key, value in items:
        match = _KEY.match(raw_key)
        if match is None:
            raise StepworkError(_INVALID, f'Unknown query parameter "{raw_key[:64]}".')
        name, brackets = match.group(1), [b[1:-1] for b in re.findall(r"\[[^\[\]]*\]", match.group(2))]
        if name in _SCALARS and not brackets:
            if name in scalars:
                raise StepworkError(_INVALID, f'Query parameter "{name}" is given more than once.')
            if len(value) > MAX_ID:
                raise StepworkError(_INVALID, f'Query parameter "{name}" is over {MAX_ID} characters.')
            if _CONTROL.search(value):
                raise StepworkError(_INVALID, f'Query parameter "{name}" must not contain control characters.')
            scalars[name] = value
            continue
        if name not in (*_TEXT_FILTERS, *_TIME_FILTERS):
            raise StepworkError(_INVALID, f'Unknown query parameter "{raw_key[:64]}". Known: '
                                          f'{", ".join((*_SCALARS, *_TEXT_FILTERS, *_TIME_FILTERS))}.')
        op = brackets[0] if brackets and brackets[0].startswith("$") else None
        rest = brackets[1:] if op else brackets
        if op is not None and op not in _OPERATORS:
            raise StepworkError(_INVALID, f'Unknown operator "{op[:32]}" in "{raw_key[:64]}". Known: '
                                          f'{", ".join(_OPERATORS)}.')
        operand: Any = _time(value, name) if name in _TIME_FILTERS else check_id(value, name)
        if len(rest) > 1 or (rest and not re.fullmatch(r"\d{0,6}", rest[0])):
            raise StepworkError(_INVALID, f'Unknown query parameter "{raw_key[:64]}".')
        listed = bool(rest) or op in ("$in", "$nin")
        if op is None:
            current = filters.get(name)
            if isinstance(current, dict):
                raise StepworkError(_INVALID, f'"{name}" takes either values or operators, not both.')
            filters[name] = [*(current or []), operand]
            continue
        ops = filters.setdefault(name, {})
        if not isinstance(ops, dict):
            raise StepworkError(_INVALID, f'"{name}" takes either values or operators, not both.')
        if listed:
            ops.setdefault(op, []).append(operand)
        elif op in ops:
            raise StepworkError(_INVALID, f'"{name}[{op}]" is given more than once.')
        else:
            ops[op] = operand
    for name, value in list(filters.items()):
        if isinstance(value, list) and len(value) == 1:
            filters[name] = value[0]
    if scalars.get("q"):
        filters["q"] = scalars["q"]
    if scalars.get("with_deleted", "false").lower() not in ("true", "false"):
        raise StepworkError(_INVALID, 'with_deleted must be "true" or "false".')
    if "stale" in scalars:
        stale = scalars["stale"].strip().lower()
        if stale not in ("true", "false"):
            raise StepworkError(_INVALID, 'stale must be "true" or "false".')
        filters["stale"] = stale == "true"
    order = None
    if scalars.get("order", "").strip():
        order = [part.strip() for part in scalars["order"].split(",") if part.strip()]
    return ListParams(filters, _int(scalars.get("offset", "0"), "offset", 0, MAX_OFFSET),
                      _int(scalars.get("limit", "100"), "limit", 0, MAX_LIMIT), order,
                      parse_fields(scalars.get("fields"), LIST_FIELDS))
