"""``Module``: a name, a service, its SQLAlchemy models and its Alembic migrations."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stepwork.container import Container
from stepwork.errors import StepworkError

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["Module"]

_INVALID = StepworkError.Types.INVALID_DATA
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Module:
    """A module of an application: ``Module(name, service, models=[...], migrations=None)``.

    - ``name``: what the service is registered as in the container (``"brand"``), and the suffix of
      its Alembic version table (``alembic_version_brand``): lower case, digits and ``_``.
    - ``service``: a class or factory called once when the ``App`` is made, or an instance used as
      is. A factory's parameters are filled by name: ``container``, ``sqlalchemy_engine`` (the
      application database's SQLAlchemy engine), ``session_factory`` (a ``sessionmaker`` on it), or
      any name registered in the container.
    - ``models``: SQLAlchemy declarative classes, made queryable (``query.graph(entity="brand")``).
    - ``migrations``: the directory of the module's Alembic revision files (a ``versions``
      directory), or ``None`` to create the models' tables as declared (no upgrades: development).
    """

    name: str
    service: Any
    models: Sequence[type[Any]] = field(default_factory=tuple)
    migrations: str | Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise StepworkError(_INVALID, f"A module name is lower case letters, digits and _ (it names the "
                                          f"alembic_version_<name> table), got {self.name!r}.")
        object.__setattr__(self, "models", tuple(self.models))
        if self.migrations is not None:
            path = Path(self.migrations)
            if not path.is_dir():
                raise StepworkError(_INVALID, f'The migrations of module "{self.name}" must be a directory of '
                                              f"Alembic revision files; {str(path)!r} is not a directory.")
            object.__setattr__(self, "migrations", path)

    @property
    def version_table(self) -> str:
        """The table Alembic records this module's revision in: ``alembic_version_<name>``."""
        return f"alembic_version_{self.name}"

    def create_service(self, container: Container, sqlalchemy_engine: Callable[[], sa.Engine]) -> Any:
        """The service: the factory called with what its parameters name, or the instance itself."""
        factory = self.service
        if not callable(factory):
            return factory
        try:
            parameters = inspect.signature(factory).parameters.values()
        except (TypeError, ValueError):
            return factory()
        kwargs: dict[str, Any] = {}
        for param in parameters:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if param.name == "container":
                kwargs[param.name] = container
            elif param.name == "sqlalchemy_engine":
                kwargs[param.name] = sqlalchemy_engine()
            elif param.name == "session_factory":
                from sqlalchemy.orm import sessionmaker

                kwargs[param.name] = sessionmaker(sqlalchemy_engine(), expire_on_commit=False)
            elif container.has(param.name):
                kwargs[param.name] = container.resolve(param.name)
            elif param.default is param.empty:
                raise StepworkError(_INVALID, f'The service of module "{self.name}" takes "{param.name}", which '
                                              "is neither container, sqlalchemy_engine, session_factory nor "
                                              f"registered in the container ({', '.join(container.names())}).")
        return factory(**kwargs)
