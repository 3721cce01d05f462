"""Listing filters: validation (shared by every store) and the SQL ``WHERE``/``ORDER BY`` they become."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stepwork.errors import StepworkError
from stepwork.orchestration.states import TransactionState
from stepwork.storage.base import ListQuery
from stepwork.storage.rows import FINISHED

__all__ = ["FILTER_KEYS", "ORDER_COLUMNS", "SEARCH_EXPRESSION", "count_from_page", "like_pattern", "matches",
           "normalize_filters", "normalize_order", "q_states", "to_sql"]

_INVALID = StepworkError.Types.INVALID_DATA
_TEXT_KEYS = ("id", "workflow_id", "transaction_id", "run_id", "state")
_TIME_KEYS = ("created_at", "updated_at")
FILTER_KEYS = (*_TEXT_KEYS, *_TIME_KEYS, "q", "stale")
ORDER_COLUMNS = ("id", "workflow_id", "transaction_id", "run_id", "state", "created_at", "updated_at")
Q_COLUMNS = ("workflow_id", "transaction_id", "run_id")  # and state, by q_states
# What PostgreSQL's trigram index for q holds (idx_wfe_search_ids, on the search table): every id q
# may match is a substring of it, so "SEARCH_EXPRESSION ILIKE pattern" is implied by q's exact condition.
SEARCH_EXPRESSION = "(workflow_id || ' ' || transaction_id || ' ' || run_id)"
_OPERATORS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte")


def _epoch(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise StepworkError(_INVALID, f'Filter "{key}" needs a datetime, an ISO-8601 string or epoch seconds, '
                                      f"got {value!r}.")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise StepworkError(_INVALID, f'Filter "{key}": {value!r} is not an ISO-8601 time.') from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return float(value.timestamp())
    raise StepworkError(_INVALID, f'Filter "{key}" needs a datetime, an ISO-8601 string or epoch seconds, '
                                  f"got {value!r}.")


def _operand(value: Any, key: str) -> Any:
    if key in _TIME_KEYS:
        return _epoch(value, key)
    if not isinstance(value, str):
        raise StepworkError(_INVALID, f'Filter "{key}" takes strings, got {value!r}.')
    return value


def normalize_filters(filters: Mapping[str, Any] | None) -> dict[str, list[tuple[str, Any]]]:
    """Validate listing filters into ``{key: [(operator, operand), ...]}`` (``q``: ``[("$q", text)]``).

    Unknown keys and operators raise ``StepworkError`` (``invalid_data``).
    """
    out: dict[str, list[tuple[str, Any]]] = {}
    if filters is None:
        return out
    if not isinstance(filters, Mapping):
        raise StepworkError(_INVALID, f"Filters must be a mapping, got {filters!r}.")
    for key, value in filters.items():
        if key not in FILTER_KEYS:
            raise StepworkError(_INVALID, f'Unknown filter "{key}". Known filters: {", ".join(FILTER_KEYS)}.')
        if value is None:
            continue
        if key == "stale":
            if not isinstance(value, bool):
                raise StepworkError(_INVALID, f'Filter "stale" takes True or False, got {value!r}.')
            out[key] = [("$stale", value)]
            continue
        if key == "q":
            if not isinstance(value, str):
                raise StepworkError(_INVALID, f'Filter "q" takes a string, got {value!r}.')
            out[key] = [("$q", value)]
            continue
        conds: list[tuple[str, Any]] = []
        if isinstance(value, Mapping):
            for op, operand in value.items():
                if op not in _OPERATORS:
                    raise StepworkError(_INVALID, f'Unknown operator "{op}" in filter "{key}". '
                                                  f"Known: {', '.join(_OPERATORS)}.")
                if op in ("$in", "$nin"):
                    if isinstance(operand, (str, bytes)) or not isinstance(operand, Sequence):
                        raise StepworkError(_INVALID, f'Operator "{op}" of filter "{key}" takes a list.')
                    conds.append((op, [_operand(v, key) for v in operand]))
                else:
                    conds.append((op, _operand(operand, key)))
        elif isinstance(value, (list, tuple)):
            conds.append(("$in", [_operand(v, key) for v in value]))
        else:
            conds.append(("$eq", _operand(value, key)))
        out[key] = conds
    return out


def normalize_order(order: Any) -> list[tuple[str, str]]:
    """``{"created_at": "DESC"}``, ``"-created_at"``, ``"created_at"`` or a list of those, validated."""
    if order is None:
        return [("created_at", "ASC"), ("run_id", "ASC")]
    items: list[tuple[str, str]] = []
    if isinstance(order, str):
        order = [order]
    if isinstance(order, Mapping):
        pairs = list(order.items())
    elif isinstance(order, Sequence):
        pairs = []
        for item in order:
            if not isinstance(item, str):
                raise StepworkError(_INVALID, f"An order item must be a column name, got {item!r}.")
            pairs.append((item[1:], "DESC") if item.startswith("-") else (item, "ASC"))
    else:
        raise StepworkError(_INVALID, f"order must be a mapping or a list of columns, got {order!r}.")
    for column, direction in pairs:
        if column not in ORDER_COLUMNS:
            raise StepworkError(_INVALID, f'Cannot order by "{column}". Columns: {", ".join(ORDER_COLUMNS)}.')
        d = str(direction).upper()
        if d not in ("ASC", "DESC"):
            raise StepworkError(_INVALID, f'Order direction must be "ASC" or "DESC", got {direction!r}.')
        items.append((column, d))
    return items or [("created_at", "ASC"), ("run_id", "ASC")]


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda v, o: bool(v == o), "$ne": lambda v, o: bool(v != o),
    "$in": lambda v, o: v in o, "$nin": lambda v, o: v not in o,
    "$gt": lambda v, o: bool(v > o), "$gte": lambda v, o: bool(v >= o),
    "$lt": lambda v, o: bool(v < o), "$lte": lambda v, o: bool(v <= o),
}
def count_from_page(query: ListQuery, returned: int) -> int | None:
    """The total count a page already tells (``None``: it must be counted): a page shorter than
    ``take`` holds the last matching rows, so the total is ``skip`` + its rows (an empty first page:
    nothing matches). A full page, an empty later one or no ``take`` needs a count."""
    take = query.take
    if take is None or take <= 0 or returned >= take:
        return None
    if returned == 0 and query.skip > 0:
        return None
    return query.skip + returned


def q_states(text: str) -> list[str]:
    """The execution states ``q`` (a case-insensitive substring) matches: states are a closed set,
    so the search compares ``state`` by equality with these instead of scanning it with LIKE."""
    needle = text.lower()
    return [s.value for s in TransactionState if needle in s.value]


_SQL_OPS = {"$eq": "=", "$ne": "<>", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def like_pattern(text: str) -> str:
    """A ``LIKE`` pattern (``ESCAPE '\\'``) matching any text containing ``text``, its ``%`` and ``_``
    literal."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def to_sql(filters: dict[str, list[tuple[str, Any]]], param: Callable[[Any], str],
           time_column: Callable[[str], str], ilike: str, search: Callable[[str], str | None] | None = None) -> str:
    """The ``WHERE`` clause (without the keyword) for normalized filters; ``param(value)`` adds a
    parameter and returns its placeholder.

    ``q`` matches a row whose workflow id, transaction id or run id contains it or whose state does
    (compared by equality with :func:`q_states`). ``search(text)``, if given, returns a condition
    true exactly for the rows whose ids contain ``text`` (the store's search table,
    :mod:`stepwork.storage.search`), or ``None``; without one the ids are compared with ``ilike``
    (``%`` and ``_`` literal)."""
    parts = ["deleted_at IS NULL"]
    for key, conds in filters.items():
        column = time_column(key) if key in _TIME_KEYS else key
        for op, operand in conds:
            if op == "$stale":
                parts.append(_stale_sql(operand, param))
                continue
            if op == "$q":
                found = search(operand) if search is not None else None  # (placeholders are made in order)
                if found is None:
                    text = like_pattern(operand)
                    alternatives = [f"{c} {ilike} {param(text)} ESCAPE '\\'" for c in Q_COLUMNS]
                else:
                    alternatives = [found]
                states = q_states(operand)
                if states:
                    alternatives.append(f"state IN ({', '.join(param(v) for v in states)})")
                parts.append("(" + " OR ".join(alternatives) + ")")
            elif op in ("$in", "$nin"):
                if not operand:
                    parts.append("1=0" if op == "$in" else "1=1")
                    continue
                marks = ", ".join(param(v) for v in operand)
                parts.append(f"{column} {'IN' if op == '$in' else 'NOT IN'} ({marks})")
            else:
                parts.append(f"{column} {_SQL_OPS[op]} {param(operand)}")
    return " AND ".join(parts)


def _stale_sql(operand: Any, param: Callable[[Any], str]) -> str:
    """``stale`` (an unfinished execution whose definition no live engine has), resolved by the
    engine to ``(flag, live workflow ids, live definition hashes)``."""
    if not isinstance(operand, tuple):
        raise StepworkError(_INVALID, 'The filter "stale" is resolved by the engine (it knows the live workers): '
                                      "list through WorkflowEngine, not the store.")
    flag, names, hashes = operand
    legacy = f"workflow_id NOT IN ({', '.join(param(n) for n in names)})" if names else "1=1"
    current = f"definition_hash NOT IN ({', '.join(param(h) for h in hashes)})" if hashes else "1=1"
    stale = (f"(state NOT IN {FINISHED} AND ((definition_hash IS NULL AND {legacy}) "
             f"OR (definition_hash IS NOT NULL AND {current})))")
    return stale if flag else f"NOT {stale}"


def matches(row: Mapping[str, Any], filters: dict[str, list[tuple[str, Any]]]) -> bool:
    """Whether a row (a mapping with epoch-second times) passes normalized filters (memory store)."""
    if row.get("deleted_at") is not None:
        return False
    for key, conds in filters.items():
        for op, operand in conds:
            if op == "$q":
                needle = operand.lower()
                if not any(needle in str(row[c]).lower() for c in ("workflow_id", "transaction_id", "state",
                                                                     "run_id")):
                    return False
                continue
            if not _COMPARE[op](row[key], operand):
                return False
    return True
