"""``stepwork migrate`` and ``stepwork cleanup``: the database's tables and its retention clean-up."""

from __future__ import annotations

from stepwork.cli.application import load_app
from stepwork.cli.common import AppOption, DatabaseUrlOption, open_store_only, run_async, settings_for
from stepwork.cli.config import Settings
from stepwork.cli.console import out
from stepwork.cli.errors import CliError
from stepwork.errors import StepworkError
from stepwork.storage.migrations import LATEST

__all__ = ["cleanup", "migrate"]


def migrate(database_url: DatabaseUrlOption = None, app: AppOption = None) -> None:
    """Create the engine's tables and the application modules' tables, or upgrade them.

    Safe to run any number of times: migrations that were applied are not applied again. The modules
    are those of the App of --app (or of [tool.stepwork] modules in ./pyproject.toml); each module's
    Alembic revisions are applied in order.

    Examples:

        stepwork migrate
        stepwork migrate --app myshop.app
        stepwork migrate --database-url postgresql://stepwork@localhost/stepwork
    """
    settings = settings_for(database_url=database_url, app=app)
    application = load_app(settings)
    try:
        done = run_async(application.migrate())
    except StepworkError as exc:
        raise CliError(f"migrating failed: {exc.message}") from None
    console = out()
    label = Settings(database_url=application.database_url).database_label
    console.print(f"The database {label} is up to date (schema version {LATEST}).")
    for name, revisions in done.items():
        console.print(f"module {name}: {', '.join(revisions) if revisions else 'no revisions'}")


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
