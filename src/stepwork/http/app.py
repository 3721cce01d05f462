"""``create_app``: the HTTP admin API of a :class:`~stepwork.engine.engine.WorkflowEngine` as a FastAPI app.

Routes (all under ``/admin/workflows-executions``, each needing an API key) are Medusa's admin
workflow routes plus cancel and retry-step; ``GET /health`` needs none; ``/openapi.json`` documents
them; the admin web page is served under ``/app`` (:mod:`stepwork.http.ui`). Serve it with any ASGI
server, e.g. ``uvicorn.run(create_app(engine))``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from stepwork.engine.engine import WorkflowEngine
from stepwork.http import actions, executions, sse
from stepwork.http.auth import Authenticator
from stepwork.http.errors import error_response, install_error_handlers
from stepwork.http.keys import ApiKeys, static_keys_from_env
from stepwork.http.middleware import MAX_BODY, BodyLimit, Guard, RedactQueryCredentials
from stepwork.http.models import ErrorBody, Health
from stepwork.http.openapi import install_openapi
from stepwork.http.runtime import Runtime, runtime
from stepwork.http.ui.install import install_ui

__all__ = ["create_app", "static_keys_from_env"]

logger = logging.getLogger("stepwork.http")
PREFIX = "/admin/workflows-executions"


async def _require_key(request: Request) -> None:
    await runtime(request).auth.check(request)


def create_app(engine: WorkflowEngine, *, keys: ApiKeys | None = None, static_keys: Sequence[str] = (),
               manage_engine: bool = True, wait_timeout: float = 5.0, max_body: int = MAX_BODY) -> FastAPI:
    """The admin API of ``engine``.

    - ``keys``: the stored API keys to accept; ``None`` opens ``ApiKeys(engine.database_url)``
      (the keys ``stepwork keys create`` made in the engine's database), closed with the app.
    - ``static_keys``: keys accepted as well (the CLI passes ``STEPWORK_API_KEYS`` here, see
      :func:`static_keys_from_env`; ``create_app`` itself reads no environment).
    - ``manage_engine``: the app's lifespan starts and stops the engine.
    - ``wait_timeout``: how long a run, a step completion or a cancel is waited for before the
      route answers and the work goes on in the background.
    - ``max_body``: request bodies over this many bytes get 413.
    """
    owned_keys = keys is None
    key_store = ApiKeys(engine.database_url) if keys is None else keys
    state = Runtime(engine, Authenticator(key_store, list(static_keys)), float(wait_timeout))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_engine:
            await engine.start()
        try:
            yield
        finally:
            await state.close()
            if owned_keys:
                await key_store.close()
            if manage_engine:
                await engine.stop()

    app = FastAPI(title="stepwork admin API", version="0.1.0", lifespan=lifespan,
                  description="Medusa-compatible admin routes of stored workflow executions. Every /admin route "
                              "needs an API key: `Authorization: Bearer KEY`, or Basic with the key as the user "
                              "name and an empty password.")
    app.state.stepwork = state
    install_error_handlers(app)
    install_openapi(app)

    @app.get("/health", response_model=Health, responses={503: {"model": ErrorBody}}, summary="Readiness")
    async def health() -> JSONResponse:
        """``{"status": "ok"}`` once the engine is started (no API key needed)."""
        if not engine.started:
            return error_response(503, "unexpected_state", "The workflow engine is not started.")
        return JSONResponse({"status": "ok"})

    # The subscriptions first: ".../{workflow_id}/subscribe" must win over ".../{workflow_id}/{transaction_id}".
    for router in (sse.router, actions.router, executions.router):
        app.include_router(router, prefix=PREFIX, dependencies=[Depends(_require_key)],
                           tags=["workflows-executions"])
    install_ui(app)

    app.add_middleware(BodyLimit, max_body=max_body)
    app.add_middleware(RedactQueryCredentials)
    app.add_middleware(Guard)
    return app
