"""Filters of ``query.graph``: a value (equality), a list (``$in``), or an operator mapping.

``{"name": "Acme"}``, ``{"id": ["b1", "b2"]}``, ``{"rank": {"$gte": 2, "$lt": 5}}``; ``None`` means
``IS NULL``. A relation takes a mapping of its own fields (``{"products": {"name": {"$like": "A%"}}}``,
or the dot path ``{"products.name": ...}``): rows with at least one related row matching. ``$and`` and
``$or`` take lists of filter mappings.

``$like`` is case-sensitive on both databases (on SQLite it is compiled to ``GLOB``, whose
wildcards stand for ``%`` and ``_``); ``$ilike`` is case-insensitive. ``\\`` escapes a wildcard in both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement

from stepwork.errors import StepworkError
from stepwork.query.entities import Entity, EntityRegistry

__all__ = ["OPERATORS", "where_clause"]

_INVALID = StepworkError.Types.INVALID_DATA


class _Like(ColumnElement[bool]):
    """A case-sensitive ``LIKE`` (``GLOB`` on SQLite, where ``LIKE`` ignores ASCII case)."""

    inherit_cache = True
    type = sa.Boolean()

    def __init__(self, column: ColumnElement[Any], pattern: str) -> None:
        self.column = column
        self.pattern = pattern


@compiles(_Like)
def _like_default(element: _Like, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column.like(element.pattern, escape="\\"), **kw))


@compiles(_Like, "sqlite")
def _like_sqlite(element: _Like, compiler: Any, **kw: Any) -> str:
    glob = element.column.op("GLOB")(_like_to_glob(element.pattern))
    return str(compiler.process(glob, **kw))


def _like_to_glob(pattern: str) -> str:
    out: list[str] = []
    escaped = False
    for ch in pattern:
        if escaped:
            out.append(f"[{ch}]" if ch in "*?[" else ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        else:
            out.append(f"[{ch}]" if ch in "*?[" else ch)
    if escaped:
        out.append("\\")
    return "".join(out)


def _sequence(op: str, value: Any) -> list[Any]:
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    raise StepworkError(_INVALID, f"{op} takes a list of values, got {value!r}.")


def _text(op: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    raise StepworkError(_INVALID, f"{op} takes a string pattern, got {value!r}.")


_Op = Callable[[ColumnElement[Any], Any], ColumnElement[bool]]
OPERATORS: dict[str, _Op] = {
    "$eq": lambda c, v: c.is_(None) if v is None else c == v,
    "$ne": lambda c, v: c.is_not(None) if v is None else sa.or_(c != v, c.is_(None)),
    "$in": lambda c, v: c.in_(_sequence("$in", v)),
    "$nin": lambda c, v: sa.or_(c.not_in(_sequence("$nin", v)), c.is_(None)),
    "$gt": lambda c, v: c > v,
    "$gte": lambda c, v: c >= v,
    "$lt": lambda c, v: c < v,
    "$lte": lambda c, v: c <= v,
    "$like": lambda c, v: _Like(c, _text("$like", v)),
    "$ilike": lambda c, v: c.ilike(_text("$ilike", v), escape="\\"),
}
_LOGICAL = ("$and", "$or")


def where_clause(registry: EntityRegistry, entity: Entity, filters: Mapping[str, Any] | None,
                 path: str = "") -> ColumnElement[bool] | None:
    """The condition ``filters`` names on ``entity`` (``None`` for no condition)."""
    if filters is None:
        return None
    if not isinstance(filters, Mapping):
        raise StepworkError(_INVALID, f"filters{_at(path)} must be a mapping of field names, got {filters!r}.")
    grouped: dict[str, Any] = {}
    for key, value in filters.items():
        head, dot, rest = str(key).partition(".")
        if dot and head in entity.relations:
            nested = grouped.setdefault(head, {})
            if not isinstance(nested, dict):
                raise StepworkError(_INVALID, f'filters{_at(path)} name relation "{head}" twice.')
            nested[rest] = value
        else:
            grouped[key] = value
    clauses = [_one(registry, entity, key, value, path) for key, value in grouped.items()]
    return sa.and_(*clauses) if clauses else None


def _one(registry: EntityRegistry, entity: Entity, key: str, value: Any, path: str) -> ColumnElement[bool]:
    if key in _LOGICAL:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, Mapping) for v in value):
            raise StepworkError(_INVALID, f"{key}{_at(path)} takes a list of filter mappings, got {value!r}.")
        parts = [c for c in (where_clause(registry, entity, v, path) for v in value) if c is not None]
        combine = sa.and_ if key == "$and" else sa.or_
        return combine(*parts) if parts else sa.true()
    columns = entity.columns
    if key in columns:
        return _column(columns[key], value, f"{path}{key}")
    relation = entity.relations.get(key)
    if relation is not None:
        if not isinstance(value, Mapping):
            raise StepworkError(_INVALID, f'The filter on relation "{path}{key}" takes a mapping of '
                                          f"{relation.mapper.class_.__name__}'s fields, got {value!r}.")
        target = registry.for_model(relation.mapper.class_)
        inner = where_clause(registry, target, value, f"{path}{key}.")
        attr = getattr(entity.model, key)
        clause: ColumnElement[bool] = attr.any(inner) if relation.uselist else attr.has(inner)
        return clause
    raise StepworkError(_INVALID, f'Unknown field "{path}{key}" in filters on "{entity.name}". Fields: '
                                  f'{", ".join(columns)}; relations: {", ".join(entity.relations) or "(none)"}; '
                                  f'and {", ".join(_LOGICAL)}.')


def _column(column: ColumnElement[Any], value: Any, where: str) -> ColumnElement[bool]:
    if isinstance(value, Mapping):
        if not value:
            raise StepworkError(_INVALID, f'The filter on "{where}" is an empty mapping.')
        parts = []
        for op, operand in value.items():
            build = OPERATORS.get(op)
            if build is None:
                raise StepworkError(_INVALID, f'Unknown operator "{op}" in the filter on "{where}". Operators: '
                                              f'{", ".join(OPERATORS)}.')
            parts.append(build(column, operand))
        return sa.and_(*parts)
    if isinstance(value, (list, tuple, set, frozenset)):
        return OPERATORS["$in"](column, value)
    return OPERATORS["$eq"](column, value)


def _at(path: str) -> str:
    return f' on "{path.rstrip(".")}"' if path else ""
