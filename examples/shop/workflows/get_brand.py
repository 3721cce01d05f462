"""``get-brand``: read one brand with ``use_query_graph_step`` (``not_found`` if there is none)."""

from __future__ import annotations

from typing import Any

from stepwork import Ref, WorkflowResponse, transform, use_query_graph_step, workflow

__all__ = ["get_brand_workflow"]


def _query(input: dict[str, Any]) -> dict[str, Any]:
    return {"entity": "brand", "fields": ["id", "name", "created_at"], "filters": {"id": input["id"]},
            "options": {"throw_if_key_not_found": True}}


@workflow("get-brand")
def get_brand_workflow(input: Ref[dict[str, Any]]) -> WorkflowResponse[dict[str, Any]]:
    """The brand ``input["id"]``, read through the query graph."""
    found = use_query_graph_step(transform(input, _query))
    return WorkflowResponse(transform(found, lambda result: result["data"][0]))
