"""The shop's subscribers (imported by ``examples.shop.app``, which binds them to the bus)."""

from examples.shop.subscribers.brand_created import on_brand_created

__all__ = ["on_brand_created"]
