"""``[tool.stepwork]`` of a ``pyproject.toml``, read into the arguments of ``App``.

Keys (all optional):

- ``app``: a Python module imported first (``"myshop.workflows"``): it defines the workflows and
  subscribers (the same key the ``stepwork`` command reads).
- ``database_url``: the engine's and the modules' database; ``STEPWORK_DATABASE_URL`` wins over it,
  as for the command line. Unset: the engine's default SQLite file.
- ``modules``: ``["myshop.brand:brand_module", ...]``, each ``"package.module:attribute"`` naming a
  ``Module``.
- ``auto_migrate``: migrate the modules at start (default ``true``; set ``false`` in production and
  run ``stepwork migrate``).
- ``event_bus``: ``"memory"`` (an ``InMemoryEventBus``) or a ``redis://`` URL (a ``RedisEventBus``).
- ``routers``: ``["myshop.api:router", ...]``, each naming a FastAPI ``APIRouter`` served by
  ``stepwork serve`` beside the admin API.

The command line's ``host`` and ``port`` may sit in the same table; they are not the App's.
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from stepwork.app.module import Module
from stepwork.errors import StepworkError
from stepwork.events import InMemoryEventBus, RedisEventBus

__all__ = ["KEYS", "app_arguments", "load_object"]

KEYS = ("app", "database_url", "modules", "auto_migrate", "event_bus", "routers", "host", "port")
_INVALID = StepworkError.Types.INVALID_DATA


def app_arguments(path: Path) -> dict[str, Any]:
    """``App`` keyword arguments from ``[tool.stepwork]`` of the ``pyproject.toml`` at ``path``."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise StepworkError(_INVALID, f"Cannot read {path}: {exc}") from None
    section = data.get("tool", {}).get("stepwork", {})
    if not isinstance(section, dict):
        raise StepworkError(_INVALID, f"[tool.stepwork] in {path} must be a table.")
    unknown = sorted(set(section) - set(KEYS))
    if unknown:
        raise StepworkError(_INVALID, f'Unknown key "{unknown[0]}" in [tool.stepwork] of {path}. '
                                      f'Keys: {", ".join(KEYS)}.')
    root = str(path.resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)  # the project's own packages import as they do from its directory
    if section.get("app"):
        importlib.import_module(_string(section, "app", path))
    args: dict[str, Any] = {}
    url = os.environ.get("STEPWORK_DATABASE_URL") or section.get("database_url")
    if url is not None:
        args["database_url"] = url if os.environ.get("STEPWORK_DATABASE_URL") else _string(section, "database_url",
                                                                                           path)
    modules = section.get("modules", [])
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise StepworkError(_INVALID, f'modules in [tool.stepwork] of {path} must be a list of "package.module:name".')
    args["modules"] = [_module(spec, path) for spec in modules]
    routers = section.get("routers", [])
    if not isinstance(routers, list) or not all(isinstance(r, str) for r in routers):
        raise StepworkError(_INVALID, f'routers in [tool.stepwork] of {path} must be a list of "package.module:name".')
    if routers:
        args["routers"] = [load_object(spec) for spec in routers]
    if "auto_migrate" in section:
        if not isinstance(section["auto_migrate"], bool):
            raise StepworkError(_INVALID, f"auto_migrate in [tool.stepwork] of {path} must be true or false.")
        args["auto_migrate"] = section["auto_migrate"]
    if section.get("event_bus"):
        bus = _string(section, "event_bus", path)
        if bus == "memory":
            args["event_bus"] = InMemoryEventBus()
        elif bus.startswith(("redis://", "rediss://")):
            args["event_bus"] = RedisEventBus(bus)
        else:
            raise StepworkError(_INVALID, f'event_bus in [tool.stepwork] of {path} is "memory" or a redis:// URL, '
                                          f"got {bus!r}.")
    return args


def _string(section: dict[str, Any], key: str, path: Path) -> str:
    value = section[key]
    if not isinstance(value, str):
        raise StepworkError(_INVALID, f"{key} in [tool.stepwork] of {path} must be a string, got {value!r}.")
    return value


def _module(spec: str, path: Path) -> Module:
    value = load_object(spec)
    if not isinstance(value, Module):
        raise StepworkError(_INVALID, f'"{spec}" in modules of [tool.stepwork] of {path} is not a Module: {value!r}.')
    return value


def load_object(spec: str) -> Any:
    """The object ``"package.module:attribute"`` names (imported)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise StepworkError(_INVALID, f'"{spec}" must be "package.module:attribute".')
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StepworkError(_INVALID, f'Cannot import "{module_name}" (from "{spec}"): {exc}') from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise StepworkError(_INVALID,
                            f'Module "{module_name}" has no attribute "{attribute}" (from "{spec}").') from None
