"""``request_scope``: the FastAPI dependency that gives a user route its request's container.

An application's own routes (``App(routers=[...])``, or ``create_app(engine, routers=[...])``) run
workflows with the request's scope, as Medusa's routes pass ``req.scope``::

    @router.post("/brands")
    async def create_brand(body: BrandIn, scope: Container = Depends(request_scope)) -> dict[str, Any]:
        result = await create_brand_workflow(scope).run(input=body.model_dump())
        return {"brand": result.result}

The scope is a child of the app's container (the engine's, unless ``create_app`` was given another)
with the request registered as ``"request"``; what a route registers in it stays with the request.
"""

from __future__ import annotations

from fastapi import Request

from stepwork.container import Container

__all__ = ["REQUEST", "request_scope"]

REQUEST = "request"


async def request_scope(request: Request) -> Container:
    """A child of the app's container for this request, with ``"request"`` registered in it."""
    base: Container = request.app.state.stepwork.container
    return base.scope({REQUEST: request})
