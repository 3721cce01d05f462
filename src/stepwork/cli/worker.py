"""``stepwork worker``: the engine without HTTP, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Annotated

import typer

from stepwork.cli.application import load_app
from stepwork.cli.common import AppOption, DatabaseUrlOption, run_async, settings_for
from stepwork.cli.config import Settings
from stepwork.cli.console import error_line, out, setup_logging
from stepwork.cli.errors import EXIT_INTERRUPTED
from stepwork.engine.registry import registered_workflows

__all__ = ["worker"]


ConcurrencyOption = Annotated[int | None, typer.Option(
    "--concurrency", "-c", min=0, metavar="N", show_default=False,
    help="How many queued runs this worker drives at once (default: the engine's, 10).")]
GraceOption = Annotated[float, typer.Option(
    "--grace", min=0.0, metavar="SECONDS",
    help="On SIGTERM or Ctrl-C: how long to let the runs in flight finish before putting the rest back in "
         "the queue for another worker.")]


def worker(app: AppOption = None, database_url: DatabaseUrlOption = None, concurrency: ConcurrencyOption = None,
           grace: GraceOption = 30.0) -> None:
    """Run the engine without HTTP, until Ctrl-C or SIGTERM.

    --app names the module that defines the workflows (and subscribers); if it has an App (attribute
    `app`, or --app MODULE:ATTRIBUTE), that App runs: its modules and its event bus's subscribers.

    It claims queued runs (engine.run(..., queue=True)) of the workflows it defines, --concurrency at
    once; recovers executions whose process died, fires due timers (retries, timeouts, schedules), and
    continues executions completed from other processes. On Ctrl-C or SIGTERM it stops claiming, lets
    the runs in flight finish for up to --grace seconds, puts the rest back in the queue (another
    worker takes them at once) and exits 0; Ctrl-C again while it stops quits at once (exit 130).

    Examples:

        stepwork worker --app myapp.workflows --concurrency 20
        STEPWORK_DATABASE_URL=postgresql://stepwork@db/stepwork stepwork worker --app myapp.workflows
    """
    settings = settings_for(app=app, database_url=database_url)
    setup_logging(logging.INFO)
    run_async(_work(settings, concurrency, grace))


def _force_quit() -> None:
    """A second Ctrl-C while stopping: one line, exit 130, without waiting for the engine."""
    sys.stdout.flush()
    error_line("interrupted again: quit without stopping the engine (its running executions resume elsewhere "
               "once their leases run out)")
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


async def _work(settings: Settings, concurrency: int | None = None, grace: float = 30.0) -> None:
    stop = asyncio.Event()
    stopped = False
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set() and sig == signal.SIGINT and not stopped:
            _force_quit()
        stop.set()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    console = out()
    found = load_app(settings)
    if concurrency is not None:  # (an App of the user's made its engine: set on it before it starts)
        found.engine.queue.concurrency = concurrency
    async with found as app:
        names = sorted(registered_workflows())
        console.print(f"stepwork worker running on {Settings(database_url=app.database_url).database_label}")
        if app.modules:
            console.print(f"modules: {', '.join(m.name for m in app.modules)}")
        console.print(f"workflows: {', '.join(names) if names else 'none (give --app MODULE to run some)'}")
        console.print(f"claiming queued runs, {app.engine.queue.concurrency} at once; Ctrl-C or SIGTERM stops it.")
        await stop.wait()
        console.print(f"stopping: no new runs; waiting up to {grace:g} s for the {len(app.engine.queue.running)} "
                      "in flight...")
        await app.engine.stop(grace=grace)  # before the App stops its bus: finishing runs still emit
    stopped = True  # a Ctrl-C from now on changes nothing
    console.print("worker stopped")

