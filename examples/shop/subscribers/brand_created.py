"""On ``brand.created``: log it and keep a welcome note (what a real shop would e-mail)."""

from __future__ import annotations

import logging

from stepwork import Container, Event, subscriber

__all__ = ["WELCOME_NOTES", "on_brand_created"]

logger = logging.getLogger("examples.shop")

WELCOME_NOTES = "welcome_notes"
"""The container name of the list the subscriber appends its notes to."""


@subscriber("brand.created")
async def on_brand_created(event: Event, container: Container) -> None:
    """Handle ``brand.created``: ``event.data`` is ``{"id", "name"}``."""
    note = f'Welcome, {event.data["name"]}! (brand {event.data["id"]})'
    container.resolve(WELCOME_NOTES).append(note)
    logger.info("brand.created handled: %s", note)
