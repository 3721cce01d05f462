"""``stepwork serve``: the admin API (FastAPI) with its engine, on uvicorn."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.text import Text

from stepwork.cli.common import AppOption, DatabaseUrlOption, run_async, settings_for
from stepwork.cli.config import Settings
from stepwork.cli.console import err, out, setup_logging
from stepwork.engine.engine import WorkflowEngine

__all__ = ["serve"]


def serve(
    app: AppOption = None,
    database_url: DatabaseUrlOption = None,
    host: Annotated[str | None, typer.Option("--host", show_default=False,
                                             help="Address to bind. (env: STEPWORK_HOST; default: 127.0.0.1, "
                                                  "this machine only)")] = None,
    port: Annotated[int | None, typer.Option("--port", "-p", min=0, max=65535, show_default=False,
                                             help="Port to listen on. (env: STEPWORK_PORT; default: 9000)")] = None,
) -> None:
    """Serve the admin API (Medusa's /admin/workflows-executions routes) and run the engine.

    Every /admin route needs an API key: create one with `stepwork keys create NAME`, or pass keys in
    STEPWORK_API_KEYS (comma-separated). Binds 127.0.0.1 unless --host says otherwise.

    Examples:

        stepwork serve --app myapp.workflows
        stepwork serve --app myapp.workflows --host 0.0.0.0 --port 8080
        STEPWORK_API_KEYS=sk_local_dev stepwork serve
    """
    settings = settings_for(app=app, database_url=database_url, host=host, port=port)
    setup_logging(logging.INFO)
    run_async(_serve(settings))


async def _serve(settings: Settings) -> None:
    # The HTTP layer (FastAPI, uvicorn, SQLAlchemy) is loaded by this command only.
    import uvicorn

    from stepwork.http.app import create_app
    from stepwork.http.keys import ApiKeys

    keys = ApiKeys(settings.database_url)
    try:
        active = [k for k in await keys.list() if k.revoked_at is None]
        if not active and not settings.api_keys:
            err().print(Text("warning: no API key exists, so nobody can call the admin API. Create one with "
                             "`stepwork keys create NAME` (or set STEPWORK_API_KEYS).", style="yellow"))
        engine = WorkflowEngine(settings.database_url)
        application = create_app(engine, keys=keys, static_keys=settings.api_keys, manage_engine=True)
        config = uvicorn.Config(application, host=settings.host, port=settings.port, log_config=None,
                                lifespan="on", server_header=False)
        server = uvicorn.Server(config)
        out().print(f"stepwork admin API on http://{_host(settings.host)}:{settings.port} "
                    f"(database {settings.database_label}); Ctrl-C stops it.")
        await server.serve()
    finally:
        await keys.close()


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
