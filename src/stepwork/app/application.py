"""``App``: modules, a container, a query and a ``WorkflowEngine`` on one database, started together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stepwork.app.module import Module
from stepwork.container import Container, Modules
from stepwork.engine.engine import WorkflowEngine
from stepwork.errors import StepworkError
from stepwork.events import attach_event_bus, bind_subscribers
from stepwork.events.types import EventBus
from stepwork.query import Query

if TYPE_CHECKING:
    import sqlalchemy as sa
    from fastapi import APIRouter, FastAPI

__all__ = ["App"]

_INVALID = StepworkError.Types.INVALID_DATA


class App:
    """An application: ``App(modules=[...], database_url=None, event_bus=None, auto_migrate=True)``.

    It makes the container (the engine as ``Modules.WORKFLOW_ENGINE``, the query as
    ``Modules.QUERY``, a logger as ``Modules.LOGGER``, the event bus as ``Modules.EVENT_BUS`` when
    given, each module's service under the module's name) and a ``WorkflowEngine`` on
    ``database_url`` (the engine's default SQLite file when ``None``). ``async with app:`` starts it:
    the engine, the modules' migrations when ``auto_migrate`` (the development default; in production
    run ``await app.migrate()``, what ``stepwork migrate`` does), the event bus and its subscribers.
    ``routers`` are the application's API routes (FastAPI ``APIRouter`` objects), served by
    :meth:`asgi` beside the admin API: what ``stepwork serve`` runs.
    """

    def __init__(self, modules: Iterable[Module] = (), database_url: str | None = None,
                 event_bus: EventBus | None = None, auto_migrate: bool = True, *,
                 container: Container | None = None, logger: logging.Logger | None = None,
                 engine_options: Mapping[str, Any] | None = None, routers: Iterable[APIRouter] = ()) -> None:
        """``container``: a container to fill (a new one by default); ``engine_options``: keyword
        arguments of ``WorkflowEngine`` (``lease_ttl``, ``poll_interval``, ``clock``…)."""
        self.modules = list(modules)
        names = [m.name for m in self.modules]
        for module in self.modules:
            if not isinstance(module, Module):
                raise StepworkError(_INVALID, f"App modules must be stepwork Module objects, got {module!r}.")
            if names.count(module.name) > 1:
                raise StepworkError(_INVALID, f'Two modules are named "{module.name}".')
        self.database_url = database_url
        self.routers = list(routers)
        for router in self.routers:
            if not hasattr(router, "routes") or not hasattr(router, "include_router"):
                raise StepworkError(_INVALID, f"App routers must be FastAPI APIRouter objects, got {router!r}.")
        self.auto_migrate = auto_migrate
        self.event_bus = event_bus
        self.container = container if container is not None else Container()
        self.engine = WorkflowEngine(database_url, container=self.container, **dict(engine_options or {}))
        self.query = Query.for_engine(self.engine, models=[m for mod in self.modules for m in mod.models])
        self.container.register(Modules.QUERY, self.query)
        if not self.container.has(Modules.LOGGER):
            self.container.register(Modules.LOGGER, logger or logging.getLogger("stepwork.app"))
        if event_bus is not None:
            attach_event_bus(self.engine, event_bus)  # registers Modules.EVENT_BUS, publishes lifecycle events
        self.services: dict[str, Any] = {}
        for module in self.modules:
            if module.name in (Modules.WORKFLOW_ENGINE, Modules.QUERY, Modules.LOGGER, Modules.EVENT_BUS):
                raise StepworkError(_INVALID, f'A module cannot be named "{module.name}": stepwork registers '
                                              "its own service under that name.")
            service = module.create_service(self.container, lambda: self.query.sqlalchemy_engine)
            self.services[module.name] = service
            self.container.register(module.name, service)
        self._started = False
        self._bound: list[str] = []

    @classmethod
    def from_config(cls, pyproject_path: str | Path = "pyproject.toml", **overrides: Any) -> App:
        """The ``App`` that ``[tool.stepwork]`` of a ``pyproject.toml`` describes (docs/application.md):
        ``app`` (a module imported first), ``database_url``, ``modules`` (``"package.module:attribute"``
        of each ``Module``), ``auto_migrate``, ``event_bus`` (``"memory"`` or a ``redis://`` URL).
        ``overrides`` are keyword arguments of ``App`` that win over the file."""
        from stepwork.app.config import app_arguments

        return cls(**{**app_arguments(Path(pyproject_path)), **overrides})

    # -- the database ----------------------------------------------------------------------------

    @property
    def sqlalchemy_engine(self) -> sa.Engine:
        """The SQLAlchemy engine on the application's database (what services and migrations use)."""
        return self.query.sqlalchemy_engine

    async def migrate(self) -> dict[str, list[str]]:
        """Create or upgrade the engine's tables and every module's (each module's Alembic revisions,
        recorded in ``alembic_version_<module>``). Returns ``{module: its revisions now}``."""
        opened = not self.engine.started
        if opened:
            await self.engine.store.open()  # the engine's own migrations
        try:
            done: dict[str, list[str]] = await self._run_db(self._upgrade)
            return done
        finally:
            if opened:
                self.query.close()
                await self.engine.store.close()

    def _upgrade(self) -> dict[str, list[str]]:
        from stepwork.app.migrations import upgrade_modules

        return upgrade_modules(self.query.sqlalchemy_engine, self.modules)

    async def _run_db(self, fn: Any) -> Any:
        if self.query.runs_inline:
            return fn()
        return await asyncio.to_thread(fn)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the engine, migrate the modules (``auto_migrate``), start the bus and bind subscribers."""
        if self._started:
            return
        await self.engine.start()
        try:
            if self.auto_migrate:
                await self._run_db(self._upgrade)
            if self.event_bus is not None:
                await self.event_bus.start()
                self._bound = await bind_subscribers(self.event_bus, self.container)
        except BaseException:
            await self.engine.stop()
            raise
        self._started = True

    async def stop(self) -> None:
        """Stop the event bus and the engine; close the query's connections."""
        if not self._started:
            return
        self._started = False
        try:
            if self.event_bus is not None:
                await self.event_bus.stop()
        finally:
            await self.engine.stop()
            self.query.close()

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def started(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._started

    def asgi(self, *, keys: Any = None, static_keys: Iterable[str] = (), **options: Any) -> FastAPI:
        """The application's HTTP server: the admin API and page (``stepwork.http.create_app``) with
        this app's ``routers``; the server's lifespan starts and stops this app. ``keys`` and
        ``static_keys`` are the admin API keys (see ``create_app``), ``options`` its other arguments."""
        from stepwork.http.app import create_app

        return create_app(self.engine, keys=keys, static_keys=list(static_keys), routers=self.routers,
                          container=self.container, hosted=lambda: self, **options)

    def scope(self, values: Mapping[str, Any] | None = None) -> Container:
        """A child of the application's container (one per request or run): see ``Container.scope``."""
        return self.container.scope(dict(values or {}))

    def resolve(self, name: str) -> Any:
        """``app.container.resolve(name)``."""
        return self.container.resolve(name)

    def __repr__(self) -> str:
        return f"App(modules={[m.name for m in self.modules]!r}, database={self.query!r})"
