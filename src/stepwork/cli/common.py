"""What the commands share: their common options, the engine they open, running a coroutine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import typer

from stepwork.cli.config import Settings, resolve
from stepwork.cli.loading import import_module
from stepwork.engine.engine import WorkflowEngine

__all__ = ["AppOption", "DatabaseUrlOption", "JsonOption", "open_engine", "open_store_only", "run_async",
           "settings_for"]

T = TypeVar("T")

DatabaseUrlOption = Annotated[str | None, typer.Option(
    "--database-url", "-d", metavar="URL", show_default=False,
    help="sqlite:///path.db, sqlite:// (in memory) or postgresql://user@host/db. "
         "(env: STEPWORK_DATABASE_URL; default: sqlite:///.stepwork/stepwork.db)")]
AppOption = Annotated[str | None, typer.Option(
    "--app", "-a", metavar="MODULE", show_default=False,
    help="Module to import first so that its workflows register (e.g. myapp.workflows). (env: STEPWORK_APP)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def settings_for(*, app: str | None = None, database_url: str | None = None, host: str | None = None,
                 port: int | None = None, import_app: bool = True) -> Settings:
    """The resolved settings; the application module, if any, is imported (its workflows register)."""
    settings = resolve(app=app, database_url=database_url, host=host, port=port)
    if import_app and settings.app:
        import_module(settings.app)
    return settings


@asynccontextmanager
async def open_engine(settings: Settings, **options: Any) -> AsyncIterator[WorkflowEngine]:
    """A started engine on the settings' database, stopped when the block ends."""
    engine = WorkflowEngine(settings.database_url, **options)
    async with engine:
        yield engine


@asynccontextmanager
async def open_store_only(settings: Settings) -> AsyncIterator[WorkflowEngine]:
    """An engine on the settings' database whose store only is open (migrations applied), for the
    commands that read or maintain it: nothing of the engine's background work runs (no recovery of
    other processes' executions, no due timers, no loops), so it is safe on a live database. Read
    through :mod:`stepwork.engine.listing` with it (its methods need a started engine)."""
    engine = WorkflowEngine(settings.database_url)
    await engine.store.open()
    try:
        yield engine
    finally:
        await engine.store.close()


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine to its end on a new event loop."""
    return asyncio.run(coroutine)
