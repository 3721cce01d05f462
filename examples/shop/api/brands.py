"""``/brands``: the seed's "Create API Routes" step. Each route runs a workflow with the request's scope.

- ``POST /brands`` ``{"name": ...}`` runs ``create-brand``: 200 ``{"brand": {...}}``; 409-like
  ``duplicate_error`` (422) if the name is taken; if a step fails, the brand is rolled back and the
  error is answered (``{"type", "message"}``).
- ``GET /brands?limit=&offset=&q=`` lists them through the query graph: ``{"brands", "count",
  "limit", "offset"}``.
- ``GET /brands/{id}`` runs ``get-brand`` (``use_query_graph_step``): ``{"brand": {...}}``, or 404.
- ``DELETE /brands/{id}`` runs ``delete-brand``: ``{"id", "object": "brand", "deleted": true}``, or 404.

These routes carry no authentication of their own: a real shop puts its auth dependency on the
router (the admin API's key guards only ``/admin``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from examples.shop.workflows import (
    CreateBrandInput,
    DeleteBrandInput,
    create_brand_workflow,
    delete_brand_workflow,
    get_brand_workflow,
)
from stepwork import Container, Modules
from stepwork.http import request_scope

__all__ = ["router"]

router = APIRouter(prefix="/brands", tags=["brands"])
Scope = Annotated[Container, Depends(request_scope)]


@router.post("")
async def create_brand(body: CreateBrandInput, scope: Scope) -> dict[str, Any]:
    """Create a brand (the ``create-brand`` workflow)."""
    result = await create_brand_workflow(scope).run(input=body)
    return {"brand": result.result}


@router.get("")
async def list_brands(scope: Scope, limit: Annotated[int, Query(ge=1, le=100)] = 20,
                      offset: Annotated[int, Query(ge=0)] = 0,
                      q: Annotated[str | None, Query(max_length=100)] = None) -> dict[str, Any]:
    """The brands, by name, a page at a time; ``q`` matches names (case-insensitive)."""
    filters = {"name": {"$ilike": f"%{q}%"}} if q else None
    found = await scope.resolve(Modules.QUERY).graph(
        entity="brand", fields=["id", "name", "created_at"], filters=filters,
        pagination={"skip": offset, "take": limit, "order": {"name": "ASC"}})
    return {"brands": found["data"], "count": found["metadata"]["count"], "limit": limit, "offset": offset}


@router.get("/{brand_id}")
async def get_brand(brand_id: str, scope: Scope) -> dict[str, Any]:
    """One brand (the ``get-brand`` workflow)."""
    result = await get_brand_workflow(scope).run(input={"id": brand_id})
    return {"brand": result.result}


@router.delete("/{brand_id}")
async def delete_brand(brand_id: str, scope: Scope) -> dict[str, Any]:
    """Delete a brand (the ``delete-brand`` workflow)."""
    result = await delete_brand_workflow(scope).run(input=DeleteBrandInput(id=brand_id))
    deleted: dict[str, Any] = result.result
    return deleted
