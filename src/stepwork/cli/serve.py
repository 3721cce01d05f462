"""``stepwork serve``: the admin API (FastAPI) with its engine, on uvicorn.

The address is bound before the engine starts (a port in use is one ``error:`` line, exit 1); the
"listening" line is printed once the server is up, with the port it really has (``--port 0`` picks
a free one). Ctrl-C or SIGTERM stops it: open event streams end at once, requests still running get
``--graceful-timeout`` seconds, then the engine stops and the command exits 0. A second Ctrl-C while
stopping quits without waiting (exit 130).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from stepwork.cli.application import load_app
from stepwork.cli.common import AppOption, DatabaseUrlOption, run_async, settings_for
from stepwork.cli.config import Settings
from stepwork.cli.console import err, out, setup_logging
from stepwork.cli.errors import EXIT_INTERRUPTED, CliError

if TYPE_CHECKING:
    import uvicorn

__all__ = ["serve"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def serve(
    app: AppOption = None,
    database_url: DatabaseUrlOption = None,
    host: Annotated[str | None, typer.Option("--host", show_default=False,
                                             help="Address to bind. (env: STEPWORK_HOST; default: 127.0.0.1, "
                                                  "this machine only)")] = None,
    port: Annotated[int | None, typer.Option("--port", "-p", min=0, max=65535, show_default=False,
                                             help="Port to listen on; 0 picks a free one. (env: STEPWORK_PORT; "
                                                  "default: 9000)")] = None,
    graceful_timeout: Annotated[int, typer.Option(
        "--graceful-timeout", min=0, help="On Ctrl-C or SIGTERM, seconds given to the requests still running "
                                            "before they are cut off.")] = 5,
) -> None:
    """Serve the admin API (Medusa's /admin/workflows-executions routes) and page, the application's own
    routes, and run the engine.

    --app names the module that defines the workflows; if it has an App (attribute `app`, or
    --app MODULE:ATTRIBUTE), that App is served: its modules, event bus and routes. Without one, the
    modules, event_bus and routers of [tool.stepwork] in ./pyproject.toml are used.

    Every /admin route needs an API key: create one with `stepwork keys create NAME`, or pass keys in
    STEPWORK_API_KEYS (comma-separated). Binds 127.0.0.1 unless --host says otherwise. Ctrl-C or
    SIGTERM stops it (open event streams end at once, running requests get --graceful-timeout seconds).

    Examples:

        stepwork serve --app myapp.workflows
        stepwork serve --app myapp.workflows --host 0.0.0.0 --port 8080
        STEPWORK_API_KEYS=sk_local_dev stepwork serve
    """
    settings = settings_for(app=app, database_url=database_url, host=host, port=port)
    setup_logging(logging.INFO)
    run_async(_serve(settings, graceful_timeout))


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a one-line error when the address cannot be had."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CliError(f"cannot listen on {_host(host)}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = "; another process uses it: choose another port with --port" if exc.errno in (48, 98, 10048) else ""
        raise CliError(f"cannot listen on {_host(host)}:{port}: {exc.strerror or exc}{hint}") from None
    return sock


def _server(config: uvicorn.Config, shut_down: Callable[[], None], banner: str) -> uvicorn.Server:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server: ends the app's event streams first when it stops, prints the banner once
        it is up, and takes SIGINT/SIGTERM without raising them again once stopped."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                out().print(banner)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            shut_down()  # the event streams end before uvicorn waits for open connections
            await super().shutdown(sockets)

        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server(config)


async def _serve(settings: Settings, graceful_timeout: int) -> None:
    # The HTTP layer (FastAPI, uvicorn, SQLAlchemy) is loaded by this command only.
    import uvicorn

    from stepwork.http.keys import ApiKeys, static_keys_from_env

    static_keys = static_keys_from_env()
    app = load_app(settings)
    engine = app.engine
    sock = _bind(settings.host, settings.port)
    keys = ApiKeys(engine.database_url)
    try:
        active = [k for k in await keys.list() if k.revoked_at is None]
        if not active and not static_keys:
            err().print(Text("warning: no API key exists, so nobody can call the admin API. Create one with "
                             "`stepwork keys create NAME` (or set STEPWORK_API_KEYS).", style="yellow"))
        application = app.asgi(keys=keys, static_keys=static_keys)
        config = uvicorn.Config(application, log_config=None, lifespan="on", server_header=False,
                                timeout_graceful_shutdown=graceful_timeout)
        bound: Any = sock.getsockname()
        server = _server(config, application.state.stepwork.shut_down,
                         f"stepwork admin API on http://{_host(settings.host)}:{bound[1]} "
                         f"(database {Settings(database_url=app.database_url).database_label}); Ctrl-C stops it.")
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:  # uvicorn's way to say the app did not start (logged above)
            raise CliError(f"the server did not start (uvicorn exit status {exc.code}); see the error "
                           "above") from None
        if server.force_exit:
            raise CliError("stopped without waiting (Ctrl-C again): the engine was not stopped; its running "
                           "executions resume once their leases run out", EXIT_INTERRUPTED)
        if not engine.started:
            out().print("stepwork admin API stopped")
    finally:
        sock.close()
        await keys.close()


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
