"""``create-brand``: the seed's first workflow, with a hook and an event.

1. ``create-brand-step`` creates the brand through the brand module's service; its compensation
   deletes it again (``StepResponse(brand, brand["id"])``: the output, then what the compensation
   gets).
2. The ``brand_created`` hook lets the application add its own step here (``examples.shop.hooks``
   publishes the brand on the CMS); if that step fails, the brand is rolled back.
3. ``emit-event-step`` emits ``brand.created``: held until the run ends, published only if it ends
   ``done`` (a rolled-back brand is never announced).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from examples.shop.modules.brand import BRAND_MODULE, BrandData, BrandModuleService
from stepwork import (
    Ref,
    StepContext,
    StepResponse,
    WorkflowResponse,
    create_hook,
    create_step,
    emit_event_step,
    transform,
    workflow,
)

__all__ = ["CreateBrandInput", "create_brand_step", "create_brand_workflow"]

RETENTION = 7 * 24 * 3600  # finished executions stay a week: the admin page shows them


class CreateBrandInput(BaseModel):
    """The input of ``create-brand`` (validated when a run starts)."""

    name: str = Field(min_length=1, max_length=100)
    additional_data: dict[str, Any] | None = None


def _create(input: CreateBrandInput, ctx: StepContext) -> StepResponse[BrandData, str]:
    brands: BrandModuleService = ctx.container.resolve(BRAND_MODULE)
    brand = brands.create_brand(input.name)
    return StepResponse(brand, brand["id"])


def _delete_created(brand_id: str | None, ctx: StepContext) -> None:
    if brand_id is not None:  # None: the step failed before it created anything
        ctx.container.resolve(BRAND_MODULE).delete_brand(brand_id)


create_brand_step = create_step("create-brand-step", _create, _delete_created)
"""Create a brand; compensation deletes it."""


def _event(brand: BrandData) -> dict[str, Any]:
    return {"event_name": "brand.created", "data": {"id": brand["id"], "name": brand["name"]}}


@workflow({"name": "create-brand", "store": True, "retention_time": RETENTION})
def create_brand_workflow(input: Ref[CreateBrandInput]) -> WorkflowResponse[BrandData]:
    """Create a brand, let the application extend the creation (hook ``brand_created``), announce it."""
    brand = create_brand_step(input)
    brand_created = create_hook("brand_created", {"brand": brand, "additional_data": input.additional_data})
    emit_event_step(transform(brand, _event))
    return WorkflowResponse(brand, hooks=[brand_created])
