"""Mount the admin web page on an app: ``install_ui(app)``."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from stepwork.http.ui.pages import router
from stepwork.http.ui.security import SecurityHeaders

__all__ = ["STATIC", "install_ui"]

STATIC = Path(__file__).resolve().parent / "static"


def install_ui(app: FastAPI, prefix: str = "/app") -> None:
    """Serve the pages under ``prefix`` (login, ``/settings/workflows``...), the CSS and script under
    ``prefix/static`` (public: they hold no data), with the security headers on all of them."""
    app.include_router(router, prefix=prefix)
    app.mount(prefix + "/static", StaticFiles(directory=STATIC), name="app-static")
    app.add_middleware(SecurityHeaders, prefix=prefix)
