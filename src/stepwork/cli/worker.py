"""``stepwork worker``: the engine without HTTP, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from stepwork.cli.common import AppOption, DatabaseUrlOption, open_engine, run_async, settings_for
from stepwork.cli.config import Settings
from stepwork.cli.console import out, setup_logging
from stepwork.engine.registry import registered_workflows

__all__ = ["worker"]


def worker(app: AppOption = None, database_url: DatabaseUrlOption = None) -> None:
    """Run the engine without HTTP, until Ctrl-C or SIGTERM.

    It recovers executions whose process died, fires due timers (retries, timeouts, schedules), and
    continues executions completed from other processes; on Ctrl-C or SIGTERM it stops cleanly.

    Examples:

        stepwork worker --app myapp.workflows
        STEPWORK_DATABASE_URL=postgresql://stepwork@db/stepwork stepwork worker --app myapp.workflows
    """
    settings = settings_for(app=app, database_url=database_url)
    setup_logging(logging.INFO)
    run_async(_work(settings))


async def _work(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    console = out()
    async with open_engine(settings):
        names = sorted(registered_workflows())
        console.print(f"stepwork worker running on {settings.database_label}")
        console.print(f"workflows: {', '.join(names) if names else 'none (give --app MODULE to run some)'}")
        console.print("Ctrl-C or SIGTERM stops it.")
        await stop.wait()
        console.print("stopping...")
    console.print("worker stopped")
