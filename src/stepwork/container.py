"""A small dependency container, and the names of the modules stepwork looks up in it.

A container may have a parent: ``container.scope()`` makes a child that resolves its own
registrations first, then its parent's (one per request, or per run, over the application's).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from stepwork.errors import StepworkError

__all__ = ["Container", "Modules"]

_MISSING = object()


class Modules:
    """Registration names of the modules stepwork resolves from a container."""

    WORKFLOW_ENGINE = "workflows"
    EVENT_BUS = "event_bus"
    QUERY = "query"
    LOGGER = "logger"


class Container:
    """Services by name: ``register(name, value)`` and ``resolve(name)``.

    Steps reach it as ``ctx.container``. Registering ``Modules.WORKFLOW_ENGINE`` makes
    ``wf(container).run()`` go through that engine. ``scope()`` makes a child container: what is
    registered in the child stays there (a request's user, say); what it lacks it resolves from here.
    """

    __slots__ = ("_parent", "_values")

    def __init__(self, values: dict[str, Any] | None = None, *, parent: Container | None = None) -> None:
        self._values: dict[str, Any] = dict(values or {})
        self._parent = parent

    @property
    def parent(self) -> Container | None:
        """The container this one was scoped from, or ``None``."""
        return self._parent

    def scope(self, values: dict[str, Any] | None = None) -> Container:
        """A child container: it resolves its own registrations first, then this container's.

        ``values`` are registered in the child. Registering in the child never changes this container.
        """
        return Container(values, parent=self)

    def create_scope(self, values: dict[str, Any] | None = None) -> Container:
        """Same as :meth:`scope` (the name Medusa's container uses)."""
        return self.scope(values)

    def register(self, name: str, value: Any) -> None:
        """Register ``value`` under ``name`` in this container (replacing any earlier value here; a
        parent's value of the same name is shadowed, not changed)."""
        if not isinstance(name, str) or not name:
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f"A container name must be a non-empty string, got {name!r}.")
        self._values[name] = value

    def _lookup(self, name: str) -> Any:
        container: Container | None = self
        while container is not None:
            value = container._values.get(name, _MISSING)
            if value is not _MISSING:
                return value
            container = container._parent
        return _MISSING

    def resolve(self, name: str) -> Any:
        """The value registered under ``name`` here or in a parent; ``StepworkError`` (``not_found``)
        if there is none."""
        value = self._lookup(name)
        if value is _MISSING:
            known = ", ".join(self.names()) or "(nothing registered)"
            raise StepworkError(StepworkError.Types.NOT_FOUND,
                                f'Nothing is registered in the container as "{name}". Registered: {known}.')
        return value

    def resolve_optional(self, name: str) -> Any:
        """The value registered under ``name`` here or in a parent, or ``None``."""
        value = self._lookup(name)
        return None if value is _MISSING else value

    def has(self, name: str) -> bool:
        """True if ``name`` is registered here or in a parent."""
        return self._lookup(name) is not _MISSING

    def names(self) -> list[str]:
        """Every name this container resolves (its own and its parents'), sorted."""
        return sorted(set(self._chain_names()))

    def _chain_names(self) -> Iterator[str]:
        container: Container | None = self
        while container is not None:
            yield from container._values
            container = container._parent

    def __repr__(self) -> str:
        if self._parent is None:
            return f"Container({sorted(self._values)!r})"
        return f"Container({sorted(self._values)!r}, parent={self._parent!r})"
