"""``use_query_graph_step``: ``query.graph`` as a step (Medusa's ``useQueryGraphStep``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepwork.container import Modules
from stepwork.engine.context import StepContext
from stepwork.errors import StepworkError
from stepwork.sdk.steps import Step, create_step

__all__ = ["use_query_graph_step"]

_KEYS = ("entity", "fields", "filters", "pagination", "options")


async def _query_graph(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    if not isinstance(input, Mapping) or "entity" not in input:
        raise StepworkError(StepworkError.Types.INVALID_DATA,
                            'use_query_graph_step takes {"entity": ..., "fields": [...], "filters": {...}, '
                            f'"pagination": {{...}}}}, got {input!r}.')
    unknown = sorted(set(input) - set(_KEYS))
    if unknown:
        raise StepworkError(StepworkError.Types.INVALID_DATA,
                            f'Unknown key "{unknown[0]}" given to use_query_graph_step. Keys: {", ".join(_KEYS)}.')
    query = ctx.container.resolve(Modules.QUERY)
    result: dict[str, Any] = await query.graph(entity=input["entity"], fields=input.get("fields"),
                                               filters=input.get("filters"), pagination=input.get("pagination"))
    options = input.get("options") or {}
    if options.get("throw_if_key_not_found") and input.get("filters") and not result["data"]:
        raise StepworkError(StepworkError.Types.NOT_FOUND,
                            f'No {input["entity"]} matches the filters {dict(input["filters"])!r}.')
    return result


use_query_graph_step: Step[Mapping[str, Any], dict[str, Any]] = create_step("use-query-graph-step", _query_graph)
"""A step running ``query.graph`` with the ``Modules.QUERY`` of the run's container.

``use_query_graph_step({"entity": "brand", "fields": ["id", "name"], "filters": {"id": input["id"]}})``
returns ``{"data": [...], "metadata": {...}}``; ``options={"throw_if_key_not_found": True}`` fails the
step (``not_found``) when filters match nothing. Use it twice in one workflow by renaming one call:
``use_query_graph_step({...}).config(name="get-products")``."""
