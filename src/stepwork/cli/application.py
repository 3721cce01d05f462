"""The ``App`` that ``stepwork serve``, ``worker`` and ``migrate`` run.

- ``--app MODULE:ATTRIBUTE`` naming an ``App``, or ``--app MODULE`` whose attribute ``app`` is an
  ``App``: that application, as its code built it (its database, modules, bus and routes).
- Otherwise an ``App`` made from the settings: the database of ``--database-url`` /
  ``STEPWORK_DATABASE_URL`` / ``[tool.stepwork]``, and the ``modules``, ``event_bus``, ``routers``
  and ``auto_migrate`` of ``[tool.stepwork]`` in ``./pyproject.toml`` (none: just the engine, with
  the workflows ``--app`` registered).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from stepwork.app import App
from stepwork.app.config import app_arguments
from stepwork.cli.config import Settings
from stepwork.cli.errors import CliError
from stepwork.cli.loading import import_module
from stepwork.errors import StepworkError

__all__ = ["load_app"]


def load_app(settings: Settings, directory: Path | None = None, engine_options: dict[str, Any] | None = None) -> App:
    """The application to run with ``settings`` (see the module's docstring); ``engine_options`` are
    the engine's keyword arguments when the App is made here (an App of the user's keeps its own)."""
    found = _app_object(settings.app) if settings.app else None
    if found is not None:
        if settings.database_url is not None and settings.database_url != found.database_url:
            own = found.database_url or "the default"
            raise CliError.usage(f"the App in {settings.app!r} sets its own database ({own}); set the database "
                                 "there, not with --database-url or STEPWORK_DATABASE_URL")
        return found
    pyproject = (directory or Path.cwd()) / "pyproject.toml"
    try:
        arguments: dict[str, Any] = app_arguments(pyproject) if pyproject.is_file() else {}
        arguments["database_url"] = settings.database_url
        return App(**arguments, engine_options=engine_options)
    except StepworkError as exc:
        raise CliError.usage(exc.message) from None


def _app_object(spec: str) -> App | None:
    module_name, sep, attribute = spec.partition(":")
    module = sys.modules.get(module_name) or import_module(module_name)
    if sep:
        value = getattr(module, attribute, None)
        if not isinstance(value, App):
            raise CliError.usage(f"{spec!r} is not a stepwork App (got {type(value).__name__}); --app names a "
                                 "module, or MODULE:ATTRIBUTE of an App")
        return value
    value = getattr(module, "app", None)
    return value if isinstance(value, App) else None
