"""The shop application: ``stepwork serve --app examples.shop.app`` serves it.

The brand module, the workflows and the hook handler, the ``brand.created`` subscriber, the
``/brands`` routes, an in-memory event bus and the fake CMS, on the database of
``STEPWORK_DATABASE_URL`` (the engine's default SQLite file ``.stepwork/stepwork.db`` when unset).
"""

from __future__ import annotations

import os

import examples.shop.hooks  # (registers the brand_created hook handler)
import examples.shop.subscribers  # noqa: F401  (registers the brand.created subscriber)
from examples.shop.api import router
from examples.shop.cms import Cms
from examples.shop.modules.brand import brand_module
from examples.shop.subscribers.brand_created import WELCOME_NOTES
from stepwork import App, Container, InMemoryEventBus

__all__ = ["app", "make_app"]


def make_app(database_url: str | None = None) -> App:
    """A new shop ``App`` on ``database_url`` (tests and the demo make their own)."""
    container = Container({"cms": Cms(), WELCOME_NOTES: []})
    return App([brand_module], database_url, InMemoryEventBus(), container=container, routers=[router])


app = make_app(os.environ.get("STEPWORK_DATABASE_URL") or None)
"""The application ``stepwork serve --app examples.shop.app`` runs."""
