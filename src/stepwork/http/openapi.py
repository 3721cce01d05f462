"""The OpenAPI document of the app, made exact: the JSON error body on every error status a route
can answer (FastAPI's own 422 validation error is a 400 here), and the API-key security schemes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from stepwork.http.models import ErrorBody

__all__ = ["install_openapi"]

_ERRORS = {
    "400": "invalid_data, invalid_argument or not_allowed: the request is wrong (the message says how)",
    "401": "unauthorized: no API key, or not a valid one",
    "404": "not_found",
    "409": "conflict: the transaction is running",
    "413": "the body is over 1 MiB",
    "422": "duplicate_error",
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def _document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    doc["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer API_KEY"},
        "basic": {"type": "http", "scheme": "basic",
                  "description": "the API key as the user name, an empty password (as @medusajs/js-sdk sends)"},
    }
    for path, operations in doc.get("paths", {}).items():
        admin = path.startswith("/admin")
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            statuses = ["400", "404", "413"] + (["401", "409", "422"] if admin else [])
            for status in statuses:
                responses[status] = {"description": _ERRORS[status],
                                     "content": {"application/json": {"schema": _ERROR_REF}}}
            if admin:
                operation["security"] = [{"bearer": []}, {"basic": []}]
    return doc


def install_openapi(app: FastAPI) -> None:
    """Serve the exact document at ``/openapi.json`` (built once)."""
    cache: dict[str, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        if "doc" not in cache:
            cache["doc"] = _document(app)
        return cache["doc"]

    app.openapi = openapi  # type: ignore[method-assign]
