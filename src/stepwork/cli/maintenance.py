"""``stepwork migrate`` and ``stepwork cleanup``: the database's tables and its retention clean-up."""

from __future__ import annotations

from stepwork.cli.common import AppOption, DatabaseUrlOption, open_store_only, run_async, settings_for
from stepwork.cli.console import out
from stepwork.storage.migrations import LATEST

__all__ = ["cleanup", "migrate"]


def migrate(database_url: DatabaseUrlOption = None) -> None:
    """Create the engine's tables, or upgrade them to this version of stepwork.

    Safe to run any number of times: migrations that were applied are not applied again.

    Examples:

        stepwork migrate
        stepwork migrate --database-url postgresql://stepwork@localhost/stepwork
    """
    settings = settings_for(database_url=database_url, import_app=False)

    async def go() -> None:
        async with open_store_only(settings):  # opening the store applies the migrations
            pass

    run_async(go())
    out().print(f"The database {settings.database_label} is up to date (schema version {LATEST}).")


def cleanup(database_url: DatabaseUrlOption = None, app: AppOption = None) -> None:
    """Delete the finished executions whose retention time ran out, and print how many.

    The engine also does this every 30 minutes while it runs (serve, worker).

    Examples:

        stepwork cleanup
        stepwork cleanup --database-url sqlite:///var/stepwork.db
    """
    settings = settings_for(database_url=database_url, app=app)

    async def go() -> int:
        async with open_store_only(settings) as engine:
            return await engine.store.delete_expired(engine.clock.time())

    count = run_async(go())
    noun = "execution" if count == 1 else "executions"
    out().print(f"Removed {count} expired {noun} from {settings.database_label}.")
