"""The ``fields`` of ``query.graph``: columns, ``*``, and dot paths into relations.

``["id", "name", "products.*", "products.variants.sku"]`` selects two columns of the root, every
column of its products and the ``sku`` of their variants. A relation named alone (``"products"``)
means ``"products.*"``; no fields at all means ``"*"``. Primary key columns always come back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import orm

from stepwork.errors import StepworkError
from stepwork.query.entities import Entity, EntityRegistry

__all__ = ["Selection", "select_fields"]

_INVALID = StepworkError.Types.INVALID_DATA


@dataclass
class Selection:
    """What to read of one entity: its columns, and a selection per relation."""

    entity: Entity
    columns: list[str] = field(default_factory=list)
    relations: dict[str, Selection] = field(default_factory=dict)

    def loader_options(self) -> list[Any]:
        """``selectinload`` options loading every selected relation (one query per relation)."""
        options: list[Any] = []
        for name, child in self.relations.items():
            load = orm.selectinload(getattr(self.entity.model, name))
            nested = child.loader_options()
            options.append(load.options(*nested) if nested else load)
        return options

    def dump(self, obj: Any) -> dict[str, Any]:
        """The selected fields of a loaded object, relations as lists (or one mapping, or ``None``)."""
        out: dict[str, Any] = {name: getattr(obj, name) for name in self.columns}
        for name, child in self.relations.items():
            value = getattr(obj, name)
            if value is None:
                out[name] = None
            elif isinstance(value, (list, set, tuple)) or hasattr(value, "__iter__"):
                out[name] = [child.dump(item) for item in value]
            else:
                out[name] = child.dump(value)
        return out


def select_fields(registry: EntityRegistry, entity: Entity, fields: Sequence[str] | None) -> Selection:
    """The selection ``fields`` names on ``entity``; ``invalid_data`` naming an unknown field or relation."""
    if fields is None or isinstance(fields, str) or not isinstance(fields, Sequence):
        if fields is not None:
            raise StepworkError(_INVALID, f'fields must be a list of field names such as ["id", "products.*"], '
                                          f"got {fields!r}.")
        fields = ["*"]
    root = Selection(entity)
    for raw in fields or ["*"]:
        if not isinstance(raw, str) or not raw:
            raise StepworkError(_INVALID, f"A field must be a non-empty string, got {raw!r}.")
        _add(registry, root, raw.split("."), raw)
    _finish(root)
    return root


def _add(registry: EntityRegistry, sel: Selection, parts: list[str], raw: str) -> None:
    head, rest = parts[0], parts[1:]
    entity = sel.entity
    if head == "*" and not rest:
        sel.columns.extend(entity.columns)
        return
    if head in entity.columns and not rest:
        sel.columns.append(head)
        return
    relation = entity.relations.get(head)
    if relation is None:
        what = "relation" if rest else "field"
        raise StepworkError(_INVALID, f'Unknown {what} "{head}" in field "{raw}" of "{entity.name}". Fields: '
                                      f'{", ".join(entity.columns)}; relations: '
                                      f'{", ".join(entity.relations) or "(none)"}.')
    child = sel.relations.get(head)
    if child is None:
        child = sel.relations[head] = Selection(registry.for_model(relation.mapper.class_))
    _add(registry, child, rest or ["*"], raw)


def _finish(sel: Selection) -> None:
    """Each column once, in the order asked; primary key columns not asked for come first."""
    missing = [key for key in sel.entity.primary_key if key not in sel.columns]
    sel.columns = list(dict.fromkeys([*missing, *sel.columns]))
    for child in sel.relations.values():
        _finish(child)
