"""JSON errors of the HTTP API: ``{"type", "message"}`` with the status each error type maps to.

Every failure becomes one of these, never a traceback: a ``StepworkError`` (by its type), FastAPI's
validation errors (400 ``invalid_data``, the fields named), Starlette's HTTP errors (unknown route,
wrong method), and anything unexpected (500 ``unexpected_state``, logged with its traceback on the
server's side only).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from stepwork.errors import StepworkError

__all__ = ["STATUS", "error_response", "install_error_handlers", "no_execution", "status_of"]

logger = logging.getLogger("stepwork.http")

_T = StepworkError.Types
STATUS: dict[str, int] = {
    _T.INVALID_DATA: 400, _T.INVALID_ARGUMENT: 400, _T.NOT_ALLOWED: 400,
    _T.UNAUTHORIZED: 401, _T.NOT_FOUND: 404, _T.CONFLICT: 409, _T.DUPLICATE_ERROR: 422,
}
_BY_STATUS = {400: _T.INVALID_DATA, 401: _T.UNAUTHORIZED, 404: _T.NOT_FOUND, 405: _T.NOT_ALLOWED,
              409: _T.CONFLICT, 413: _T.INVALID_DATA, 422: _T.DUPLICATE_ERROR}


def no_execution(workflow_id: str, transaction_id: str) -> StepworkError:
    """The ``not_found`` error of a transaction without a stored execution."""
    return StepworkError(_T.NOT_FOUND, f'Workflow "{workflow_id}" has no stored execution with transaction id '
                                       f'"{transaction_id}".')


def status_of(error: StepworkError) -> int:
    """The HTTP status of a ``StepworkError``: 400, 401, 404, 409, 422, or 500 for any other type."""
    return STATUS.get(error.type, 500)


def error_response(status: int, type: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """``{"type", "message"}`` with ``status``."""
    return JSONResponse({"type": type, "message": message}, status_code=status, headers=headers)


def _location(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where, rest = parts[0], parts[1:]
        return f"{where} field {'.'.join(rest)}" if rest else f"the request {where}"
    return ".".join(parts) or "the request"


def validation_message(errors: Sequence[Any]) -> str:
    """One readable line from pydantic's validation errors."""
    lines = []
    for err in list(errors)[:5]:
        if err.get("type") == "json_invalid":
            lines.append("the body is not valid JSON")
            continue
        lines.append(f"{_location(err.get('loc', ()))}: {err.get('msg', 'is invalid')}")
    more = len(errors) - len(lines)
    return "Invalid request: " + "; ".join(lines) + (f" (and {more} more)" if more > 0 else "") + "."


async def _stepwork_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StepworkError)
    status = status_of(exc)
    if status == 500:
        logger.error("%s %s failed: %s (%s)", request.method, request.url.path, exc.message, exc.type)
    headers = {"WWW-Authenticate": 'Bearer realm="stepwork"'} if status == 401 else None
    return error_response(status, exc.type, exc.message, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, _T.INVALID_DATA, validation_message(exc.errors()))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    type_ = _BY_STATUS.get(exc.status_code, _T.UNEXPECTED_STATE)
    message = exc.detail if isinstance(exc.detail, str) else "The request failed."
    if exc.status_code == 404:
        message = f"No route {request.method} {request.url.path}; see /openapi.json for the routes."
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}; see /openapi.json for the routes."
    return error_response(exc.status_code, type_, message, dict(exc.headers) if exc.headers else None)


def install_error_handlers(app: FastAPI) -> None:
    """Make the errors of ``app``'s routes JSON ``{type, message}`` (unexpected exceptions are the
    :class:`~stepwork.http.middleware.Guard`'s)."""
    app.add_exception_handler(StepworkError, _stepwork_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
