"""A stand-in for an external CMS the shop publishes brands to (registered as ``"cms"``).

It keeps the pages in memory; ``down = True`` makes it refuse every call, as a real service does
during an outage. The demo uses that to show a creation rolled back halfway.
"""

from __future__ import annotations

from stepwork import StepworkError

__all__ = ["Cms"]


class Cms:
    """Brand pages by brand id."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self.down = False

    def publish(self, brand_id: str, name: str) -> str:
        """Publish a page for the brand; returns its URL."""
        if self.down:
            raise StepworkError(StepworkError.Types.UNEXPECTED_STATE,
                                "The CMS is unavailable (503); the brand page was not published.")
        url = f"https://cms.example/brands/{brand_id}"
        self.pages[brand_id] = name
        return url

    def unpublish(self, brand_id: str) -> None:
        """Remove the brand's page, if it has one."""
        self.pages.pop(brand_id, None)
