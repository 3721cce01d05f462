"""Settings of the command line, and where each one comes from.

Precedence, highest first: the command-line option; the environment (``STEPWORK_DATABASE_URL``,
``STEPWORK_APP``, ``STEPWORK_HOST``, ``STEPWORK_PORT``; ``STEPWORK_API_KEYS``, comma-separated, is
read by ``stepwork serve`` with :func:`stepwork.http.keys.static_keys_from_env`);
``[tool.stepwork]`` in ``./pyproject.toml`` (keys ``app``, ``database_url``, ``host``, ``port``);
the defaults (host ``127.0.0.1``, port ``9000``, the engine's default database
``./.stepwork/stepwork.db``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stepwork.cli.errors import CliError

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "ENV", "Settings", "pyproject_settings", "resolve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
ENV = {"app": "STEPWORK_APP", "database_url": "STEPWORK_DATABASE_URL", "host": "STEPWORK_HOST",
       "port": "STEPWORK_PORT", "api_keys": "STEPWORK_API_KEYS"}
# modules, auto_migrate, event_bus and routers are the application layer's (stepwork.app.App.from_config).
_PYPROJECT_KEYS = ("app", "database_url", "host", "port", "modules", "auto_migrate", "event_bus", "routers")


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved settings; ``database_url`` ``None`` is the engine's default SQLite file."""

    app: str | None = None
    database_url: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT

    @property
    def database_label(self) -> str:
        """The database as shown to people (the default file spelled out, passwords hidden)."""
        if self.database_url is None:
            return "sqlite:///.stepwork/stepwork.db (the default)"
        return _hide_password(self.database_url)


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    auth, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in auth:
        return url
    return f"{scheme}://{auth.split(':', 1)[0]}:***@{host}"


def pyproject_settings(directory: Path | None = None) -> dict[str, Any]:
    """``[tool.stepwork]`` of ``pyproject.toml`` in ``directory`` (the current one by default), checked."""
    path = (directory or Path.cwd()) / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CliError.usage(f"cannot read {path}: {exc}") from None
    section = data.get("tool", {}).get("stepwork", {})
    if not isinstance(section, Mapping):
        raise CliError.usage(f"[tool.stepwork] in {path} must be a table")
    unknown = sorted(set(section) - set(_PYPROJECT_KEYS))
    if unknown:
        raise CliError.usage(f"unknown key {', '.join(unknown)} in [tool.stepwork] of {path}; "
                             f"known keys: {', '.join(_PYPROJECT_KEYS)}")
    for key in ("app", "database_url", "host"):
        if key in section and not isinstance(section[key], str):
            raise CliError.usage(f"{key} in [tool.stepwork] of {path} must be a string")
    return dict(section)


def _port(value: object, source: str) -> int:
    try:
        port = int(str(value)) if not isinstance(value, bool) else -1
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise CliError.usage(f"the port from {source} must be a number from 0 to 65535, got {value!r}")
    return port


def resolve(*, app: str | None = None, database_url: str | None = None, host: str | None = None,
            port: int | None = None, environ: Mapping[str, str] | None = None,
            directory: Path | None = None) -> Settings:
    """The settings from the options given (``None``: not given), the environment and ``pyproject.toml``."""
    env = os.environ if environ is None else environ
    project = pyproject_settings(directory)

    def pick(key: str, option: Any) -> tuple[Any, str]:
        if option is not None:
            return option, f"--{key.replace('_', '-')}"
        value = env.get(ENV[key])
        if value:
            return value, ENV[key]
        if key in project:
            return project[key], f"[tool.stepwork] {key}"
        return None, "the default"

    app_value, _ = pick("app", app)
    url_value, _ = pick("database_url", database_url)
    host_value, _ = pick("host", host)
    port_value, port_source = pick("port", port)
    return Settings(app=app_value or None, database_url=url_value or None, host=host_value or DEFAULT_HOST,
                    port=DEFAULT_PORT if port_value is None else _port(port_value, port_source))
