"""The entities a query reads: SQLAlchemy mapped classes by name, ``workflow_execution`` among them.

An entity is a mapped class (a module's declarative model, or the engine's ``workflow_execution``
table mapped here, read-only). It is known by its table name and its class name in snake case, each
also in a plural form (``brand``/``brands``, ``workflow_execution``/``workflow_executions``).

This module imports SQLAlchemy: it is imported when a query is first used, never by ``import stepwork``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm

from stepwork.errors import StepworkError
from stepwork.storage.schema import EXECUTIONS

__all__ = ["Entity", "EntityRegistry", "WorkflowExecutionRow"]

_INVALID = StepworkError.Types.INVALID_DATA


class _Time(sa.types.TypeDecorator[dt.datetime]):
    """A time column of the engine's tables read as an aware UTC ``datetime`` on both databases
    (``REAL`` epoch seconds on SQLite, ``TIMESTAMPTZ`` on PostgreSQL); a filter may give a
    ``datetime`` or epoch seconds."""

    impl = sa.REAL
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(sa.REAL())

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            if isinstance(value, (int, float)):
                return dt.datetime.fromtimestamp(value, dt.UTC)
            return value
        if isinstance(value, dt.datetime):
            return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
        return value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, (int, float)):
            return dt.datetime.fromtimestamp(value, dt.UTC)
        return value.astimezone(dt.UTC) if isinstance(value, dt.datetime) else None


# The columns of the engine's table users know (what Medusa's workflow_execution shows), mapped
# read-only; the record itself (execution, context) is read with ``engine.retrieve``.
_EXECUTION_COLUMNS = ("id", "workflow_id", "transaction_id", "run_id", "state", "retention_time",
                      "created_at", "updated_at", "deleted_at")
_TIMES = {"created_at", "updated_at", "deleted_at"}
_METADATA = sa.MetaData()
_EXECUTIONS = sa.Table(
    EXECUTIONS.name, _METADATA,
    *(sa.Column(name, _Time() if name in _TIMES else EXECUTIONS.c[name].type,
                primary_key=name in ("workflow_id", "transaction_id", "run_id"))
      for name in _EXECUTION_COLUMNS),
)


class WorkflowExecutionRow:
    """A row of the engine's ``workflow_execution`` table, as a query reads it."""


orm.registry().map_imperatively(WorkflowExecutionRow, _EXECUTIONS)


@dataclass(frozen=True)
class Entity:
    """One queryable entity: its name, mapped class, columns, relations and default condition."""

    name: str
    model: type[Any]
    mapper: orm.Mapper[Any]
    where: sa.ColumnElement[bool] | None = None  # always applied (soft-deleted rows are left out)

    @property
    def columns(self) -> dict[str, sa.ColumnElement[Any]]:
        """Attribute name → column of the mapped class."""
        return {prop.key: getattr(self.model, prop.key) for prop in self.mapper.column_attrs}

    @property
    def relations(self) -> dict[str, orm.RelationshipProperty[Any]]:
        """Relation name → relationship of the mapped class."""
        return {rel.key: rel for rel in self.mapper.relationships}

    @property
    def primary_key(self) -> list[str]:
        """The attribute names of the primary key columns."""
        return [self.mapper.get_property_by_column(col).key for col in self.mapper.primary_key]


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _plural(name: str) -> str:
    return name if name.endswith("s") else name + "s"


def _mapper(model: Any) -> orm.Mapper[Any]:
    try:
        mapper = sa.inspect(model)
    except sa.exc.NoInspectionAvailable:
        mapper = None
    if not isinstance(mapper, orm.Mapper):
        raise StepworkError(_INVALID, f"{model!r} is not a SQLAlchemy mapped class: a module's models are "
                                      "declarative classes (class Brand(Base): __tablename__ = ...).")
    return mapper


class EntityRegistry:
    """Entities by name (and plural name); ``workflow_execution`` is always there."""

    def __init__(self, models: Iterable[type[Any]] = ()) -> None:
        self._by_name: dict[str, Entity] = {}
        self._primary: dict[str, Entity] = {}
        executions = _EXECUTIONS.c
        self._add(Entity("workflow_execution", WorkflowExecutionRow, _mapper(WorkflowExecutionRow),
                         where=executions.deleted_at.is_(None)), aliases=())
        self.add(models)

    def add(self, models: Iterable[type[Any]]) -> None:
        """Register mapped classes (a name taken by another class is an ``invalid_data`` error)."""
        for model in models:
            mapper = _mapper(model)
            table = getattr(mapper.local_table, "name", None)
            names = [n for n in dict.fromkeys([str(table or ""), _snake(model.__name__)]) if n]
            self._add(Entity(names[0], model, mapper), aliases=names[1:])

    def _add(self, entity: Entity, aliases: Iterable[str]) -> None:
        names = {entity.name, *aliases}
        names |= {_plural(n) for n in names}
        for name in names:
            other = self._by_name.get(name)
            if other is not None and other.model is not entity.model:
                raise StepworkError(_INVALID, f'Two models are named "{name}": {other.model.__qualname__} and '
                                              f"{entity.model.__qualname__}.")
        for name in names:
            self._by_name[name] = entity
        self._primary[entity.name] = entity

    def get(self, name: str) -> Entity:
        """The entity named ``name``; ``invalid_data`` naming the entities there are otherwise."""
        entity = self._by_name.get(name) if isinstance(name, str) else None
        if entity is None:
            raise StepworkError(_INVALID, f'Unknown entity "{name}". Entities: {", ".join(self.names())}.')
        return entity

    def for_model(self, model: type[Any]) -> Entity:
        """The entity of a mapped class (a related class not registered gets an entity of its own)."""
        for entity in self._primary.values():
            if entity.model is model:
                return entity
        mapper = _mapper(model)
        return Entity(str(getattr(mapper.local_table, "name", model.__name__)), model, mapper)

    def names(self) -> list[str]:
        """The entities' names (singular), sorted."""
        return sorted(self._primary)
