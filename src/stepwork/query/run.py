"""One ``query.graph`` call: checked arguments compiled to SQLAlchemy, run in one read session."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm

from stepwork.errors import StepworkError
from stepwork.query.entities import Entity, EntityRegistry
from stepwork.query.fields import select_fields
from stepwork.query.filters import where_clause

__all__ = ["run_graph"]

_INVALID = StepworkError.Types.INVALID_DATA
_PAGINATION_KEYS = ("skip", "take", "order")


def run_graph(engine: sa.Engine, registry: EntityRegistry, entity_name: str, fields: Sequence[str] | None,
              filters: Mapping[str, Any] | None, pagination: Mapping[str, Any] | None) -> dict[str, Any]:
    """The result of ``query.graph`` (see :meth:`stepwork.query.Query.graph`)."""
    entity = registry.get(entity_name)
    selection = select_fields(registry, entity, fields)
    condition = where_clause(registry, entity, filters)
    if entity.where is not None:
        condition = entity.where if condition is None else sa.and_(entity.where, condition)
    skip, take, order = _pagination(entity, pagination)

    rows = sa.select(entity.model).options(*selection.loader_options())
    count = sa.select(sa.func.count()).select_from(entity.model)
    if condition is not None:
        rows, count = rows.where(condition), count.where(condition)
    rows = rows.order_by(*order).offset(skip or None)
    if take is not None:
        rows = rows.limit(take)
    try:
        with orm.Session(engine) as session:
            objects = session.scalars(rows).all()
            data = [selection.dump(obj) for obj in objects]
            if take is None and not skip:
                total = len(data)
            else:
                total = int(session.scalar(count) or 0)
            session.rollback()
    except sa.exc.SQLAlchemyError as exc:
        raise StepworkError(StepworkError.Types.DB_ERROR,
                            f'Querying "{entity.name}" failed: {exc.__class__.__name__}: '
                            f"{str(getattr(exc, 'orig', None) or exc).strip()}") from exc
    return {"data": data, "metadata": {"count": total, "skip": skip, "take": take}}


def _pagination(entity: Entity, pagination: Mapping[str, Any] | None) -> tuple[int, int | None, list[Any]]:
    if pagination is None:
        pagination = {}
    if not isinstance(pagination, Mapping):
        raise StepworkError(_INVALID, f"pagination must be a mapping with skip, take and order, got {pagination!r}.")
    unknown = set(pagination) - set(_PAGINATION_KEYS)
    if unknown:
        raise StepworkError(_INVALID, f'Unknown pagination key "{sorted(unknown)[0]}". Keys: '
                                      f'{", ".join(_PAGINATION_KEYS)}.')
    skip = pagination.get("skip") or 0
    take = pagination.get("take")
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
        raise StepworkError(_INVALID, f"pagination skip must be an integer >= 0, got {skip!r}.")
    if take is not None and (isinstance(take, bool) or not isinstance(take, int) or take < 0):
        raise StepworkError(_INVALID, f"pagination take must be an integer >= 0 or None, got {take!r}.")
    return skip, take, _order(entity, pagination.get("order"))


def _order(entity: Entity, order: Any) -> list[Any]:
    columns = entity.columns
    keys = [columns[name] for name in entity.primary_key]  # a stable order for pages
    if order is None:
        return keys
    if not isinstance(order, Mapping):
        raise StepworkError(_INVALID, f'pagination order must be a mapping such as {{"name": "DESC"}}, got {order!r}.')
    clauses = []
    for name, direction in order.items():
        column = columns.get(name)
        if column is None:
            raise StepworkError(_INVALID, f'Unknown field "{name}" in pagination order of "{entity.name}". Fields: '
                                          f'{", ".join(columns)}.')
        word = str(direction).upper()
        if word not in ("ASC", "DESC"):
            raise StepworkError(_INVALID, f'Order "{direction}" of "{name}" must be "ASC" or "DESC".')
        clauses.append(column.desc() if word == "DESC" else column.asc())
    return [*clauses, *keys]
