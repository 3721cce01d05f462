"""``delete-brand``: delete a brand; if a later step fails, the brand comes back as it was."""

from __future__ import annotations

from pydantic import BaseModel, Field

from examples.shop.modules.brand import BRAND_MODULE, BrandData, BrandModuleService
from examples.shop.workflows.create_brand import RETENTION
from stepwork import Ref, StepContext, StepResponse, WorkflowResponse, create_step, emit_event_step, transform, workflow

__all__ = ["DeleteBrandInput", "delete_brand_step", "delete_brand_workflow"]


class DeleteBrandInput(BaseModel):
    """The input of ``delete-brand``."""

    id: str = Field(min_length=1, max_length=40)


def _delete(input: DeleteBrandInput, ctx: StepContext) -> StepResponse[dict[str, object], BrandData]:
    brands: BrandModuleService = ctx.container.resolve(BRAND_MODULE)
    brand = brands.retrieve_brand(input.id)  # not_found (404 over HTTP) if there is none
    brands.delete_brand(brand["id"])
    return StepResponse({"id": brand["id"], "object": "brand", "deleted": True}, brand)


def _restore(brand: BrandData | None, ctx: StepContext) -> None:
    if brand is not None:
        ctx.container.resolve(BRAND_MODULE).restore_brand(brand)


delete_brand_step = create_step("delete-brand-step", _delete, _restore)
"""Delete a brand; compensation restores it (same id, name and creation time)."""


@workflow({"name": "delete-brand", "store": True, "retention_time": RETENTION})
def delete_brand_workflow(input: Ref[DeleteBrandInput]) -> WorkflowResponse[dict[str, object]]:
    """Delete a brand and announce it (``brand.deleted``)."""
    deleted = delete_brand_step(input)
    emit_event_step(transform(deleted, lambda d: {"event_name": "brand.deleted", "data": {"id": d["id"]}}))
    return WorkflowResponse(deleted)
