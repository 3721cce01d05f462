"""A small dependency container, and the names of the modules stepwork looks up in it."""

from __future__ import annotations

from typing import Any

from stepwork.errors import StepworkError

__all__ = ["Container", "Modules"]


class Modules:
    """Registration names of the modules stepwork resolves from a container."""

    WORKFLOW_ENGINE = "workflows"
    EVENT_BUS = "event_bus"
    QUERY = "query"
    LOGGER = "logger"


class Container:
    """Services by name: ``register(name, value)`` and ``resolve(name)``.

    Steps reach it as ``ctx.container``. Registering ``Modules.WORKFLOW_ENGINE`` makes
    ``wf(container).run()`` go through that engine.
    """

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self._values: dict[str, Any] = dict(values or {})

    def register(self, name: str, value: Any) -> None:
        """Register ``value`` under ``name`` (replacing any earlier value)."""
        if not isinstance(name, str) or not name:
            raise StepworkError(StepworkError.Types.INVALID_DATA,
                                f"A container name must be a non-empty string, got {name!r}.")
        self._values[name] = value

    def resolve(self, name: str) -> Any:
        """The value registered under ``name``; ``StepworkError`` (``not_found``) if there is none."""
        try:
            return self._values[name]
        except KeyError:
            known = ", ".join(sorted(self._values)) or "(nothing registered)"
            raise StepworkError(StepworkError.Types.NOT_FOUND,
                                f'Nothing is registered in the container as "{name}". Registered: {known}.'
                                ) from None

    def resolve_optional(self, name: str) -> Any:
        """The value registered under ``name``, or ``None``."""
        return self._values.get(name)

    def has(self, name: str) -> bool:
        """True if ``name`` is registered."""
        return name in self._values

    def __repr__(self) -> str:
        return f"Container({sorted(self._values)!r})"
