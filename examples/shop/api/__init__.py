"""The shop's API routes (``router``), served by ``stepwork serve`` beside the admin API."""

from examples.shop.api.brands import router

__all__ = ["router"]
