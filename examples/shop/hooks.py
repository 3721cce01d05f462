"""The shop's handler of ``create-brand``'s ``brand_created`` hook: publish the brand on the CMS.

A hook handler is a step the application adds to a workflow it did not write. This one has a
compensation too: if anything after it fails, the page is removed; if it fails itself (the CMS is
down), the brand created before it is rolled back.
"""

from __future__ import annotations

from typing import Any

from examples.shop.cms import Cms
from examples.shop.workflows.create_brand import create_brand_workflow
from stepwork import StepContext, StepResponse

__all__ = ["publish_brand_page", "unpublish_brand_page"]


def publish_brand_page(values: dict[str, Any], ctx: StepContext) -> StepResponse[dict[str, str], str]:
    """Publish the new brand's page; the compensation gets the brand id."""
    cms: Cms = ctx.container.resolve("cms")
    brand = values["brand"]
    return StepResponse({"page": cms.publish(brand["id"], brand["name"])}, brand["id"])


def unpublish_brand_page(brand_id: str | None, ctx: StepContext) -> None:
    """Remove the page again."""
    if brand_id is not None:
        ctx.container.resolve("cms").unpublish(brand_id)


create_brand_workflow.hooks.brand_created(publish_brand_page, unpublish_brand_page)
