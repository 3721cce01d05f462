"""``create_app``: the HTTP admin API of a :class:`~stepwork.engine.engine.WorkflowEngine` as a FastAPI app.

Routes (all under ``/admin/workflows-executions``, each needing an API key) are Medusa's admin
workflow routes plus cancel and retry-step; ``GET /health`` needs none; ``/openapi.json`` documents
them; the admin web page is served under ``/app`` (:mod:`stepwork.http.ui`). An application's own
routes (FastAPI routers) are served beside them, without the admin key: they take the request's
scoped container with ``Depends(request_scope)`` (:mod:`stepwork.http.scope`), and the
``StepworkError`` they raise become JSON errors with the status of their type. Serve it with any
ASGI server, e.g. ``uvicorn.run(create_app(engine))``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from stepwork.container import Container
from stepwork.engine.engine import WorkflowEngine
from stepwork.http import actions, executions, sse, workers
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
               manage_engine: bool = True, wait_timeout: float = 5.0, max_body: int = MAX_BODY,
               routers: Sequence[APIRouter] = (), container: Container | None = None,
               hosted: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
               title: str = "stepwork admin API") -> FastAPI:
    """The admin API of ``engine``.

    - ``keys``: the stored API keys to accept; ``None`` opens ``ApiKeys(engine.database_url)``
      (the keys ``stepwork keys create`` made in the engine's database), closed with the app.
    - ``static_keys``: keys accepted as well (the CLI passes ``STEPWORK_API_KEYS`` here, see
      :func:`static_keys_from_env`; ``create_app`` itself reads no environment).
    - ``manage_engine``: the app's lifespan starts and stops the engine.
    - ``wait_timeout``: how long a run, a step completion or a cancel is waited for before the
      route answers and the work goes on in the background.
    - ``max_body``: request bodies over this many bytes get 413.
    - ``routers``: the application's own routes, included as they are (no admin key needed: they
      bring their own auth); ``Depends(request_scope)`` gives them the request's container.
    - ``container``: the container whose scopes the routes get (default ``engine.container``).
    - ``hosted``: makes an async context entered for the app's life instead of starting the engine
      (an ``App`` passes itself: its engine, event bus and modules start and stop with the server).
    """
    if hosted is not None and manage_engine:
        manage_engine = False
    owned_keys = keys is None
    key_store = ApiKeys(engine.database_url) if keys is None else keys
    state = Runtime(engine, Authenticator(key_store, list(static_keys)), float(wait_timeout),
                    container if container is not None else engine.container)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if hosted is not None:
                await stack.enter_async_context(hosted())
            elif manage_engine:
                await engine.start()
                stack.push_async_callback(engine.stop)
            stack.push_async_callback(state.close)
            if owned_keys:
                stack.push_async_callback(key_store.close)
            yield

    app = FastAPI(title=title, version="0.1.0", lifespan=lifespan,
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
    app.include_router(workers.router, dependencies=[Depends(_require_key)], tags=["workers"])
    install_ui(app)
    for router in routers:
        app.include_router(router)

    app.add_middleware(BodyLimit, max_body=max_body)
    app.add_middleware(RedactQueryCredentials)
    app.add_middleware(Guard)
    return app
