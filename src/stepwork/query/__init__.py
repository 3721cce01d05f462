"""Query: ``query.graph(entity, fields, filters, pagination)`` over SQLAlchemy models (docs/application.md).

It sits just above ``storage`` and below ``engine``: a ``WorkflowEngine`` registers a ``Query`` over
its own database as ``Modules.QUERY`` when it starts (``attach_engine_query``), so
``workflow_execution`` is always queryable; an application adds its modules' models to it. Importing
this package does not import SQLAlchemy (the first query does).
"""

from __future__ import annotations

from typing import Any

from stepwork.container import Modules
from stepwork.query.service import Query, sqlalchemy_url

__all__ = ["Query", "attach_engine_query", "detach_engine_query", "sqlalchemy_url"]


def attach_engine_query(engine: Any) -> Query | None:
    """Register a query over ``engine``'s database as ``Modules.QUERY`` in its container, unless one
    is registered there already (an application's, with its modules' models). Returns the query
    registered now, or ``None``."""
    container = engine.container
    if container.resolve_optional(Modules.QUERY) is not None:
        return None
    query = Query.for_engine(engine)
    container.register(Modules.QUERY, query)
    return query


def detach_engine_query(query: Query | None) -> None:
    """Close the connections of a query :func:`attach_engine_query` registered (it stays registered,
    and connects again when used after the engine starts again)."""
    if query is not None:
        query.close()
