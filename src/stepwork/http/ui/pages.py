"""The routes of the admin web page: login and logout, the list of executions and one execution.

Pages are rendered on the server (Jinja2, every value escaped); the page's script
(``static/app.js``) refreshes the list's results and an execution's body from the ``/_rows`` and
``/_body`` fragments below while the SSE routes report events, and acts through the ``/admin``
JSON routes with the session cookie and its CSRF token. Without a session, a page redirects to the
login and a fragment answers 401.
"""

from __future__ import annotations

import math
import time
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from stepwork.engine.registry import registered_workflows
from stepwork.errors import StepworkError
from stepwork.http.runtime import runtime
from stepwork.http.ui import views
from stepwork.http.ui.security import safe_next, same_origin
from stepwork.http.ui.sessions import COOKIE, Session

__all__ = ["PAGE_SIZE", "router"]

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 20
LIST = "/app/settings/workflows"
_MAX_TEXT = 256
_MAX_PAGE = 10**9 // PAGE_SIZE

_env = Environment(loader=PackageLoader("stepwork.http.ui", "templates"),
                   autoescape=select_autoescape(["html"], default_for_string=True, default=True),
                   trim_blocks=True, lstrip_blocks=True)
_env.globals.update(tone=views.tone, STATES=views.STATES, LIST=LIST)
# A path segment: "/", "?", "#", "%" and the rest encoded (Jinja's own urlencode keeps "/").
_env.filters["seg"] = lambda value: quote(str(value), safe="")


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**context), status_code=status)


async def _session(request: Request) -> Session | None:
    return await runtime(request).auth.session_of(request)


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/app/login?next={quote(target, safe='')}", status_code=303)


def _unauthorized() -> JSONResponse:
    return JSONResponse({"type": "unauthorized", "message": "The session has ended; log in again."}, 401)


# -- login and logout ------------------------------------------------------------------------------


@router.get("")
@router.get("/")
async def home() -> RedirectResponse:
    """The app's start: the list of executions."""
    return RedirectResponse(LIST, status_code=303)


@router.get("/login")
async def login_page(request: Request) -> Response:
    """The login form (no data on it); a logged-in browser goes on to the list."""
    target = safe_next(request.query_params.get("next"), LIST)
    if await _session(request) is not None:
        return RedirectResponse(target, status_code=303)
    return _render("login.html", next=target, error=None, ended=request.query_params.get("ended") == "1")


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key of the form; a valid one starts a session (an HttpOnly, SameSite=Strict cookie)."""
    if not same_origin(request.headers.get("origin"), request.headers.get("host")):
        return _render("login.html", 403, next=LIST, ended=False,
                       error="This login form was sent from another site; open the login page here and try again.")
    body = await request.body()
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)) if len(body) < 8192 else {}
    target = safe_next(form.get("next"), LIST)
    key = form.get("key", "").strip()
    auth = runtime(request).auth
    who = await auth.identify(key) if key else None
    if who is None:
        message = ("Enter an API key." if not key else
                   "That API key is not valid (unknown or revoked). Check it, or create one with "
                   "`stepwork keys create NAME`.")
        return _render("login.html", 401, next=target, error=message, ended=False)
    auth.sessions.end(request.cookies.get(COOKIE))
    session = auth.sessions.create(key, who)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (the form carries its CSRF token) and forget the cookie."""
    session = await _session(request)
    body = await request.body()
    form = dict(parse_qsl(body.decode("utf-8", "replace"))) if len(body) < 8192 else {}
    if session is not None:
        if not session.csrf_matches(form.get("csrf")):
            return JSONResponse({"type": "unauthorized", "message": "The logout needs the page's CSRF token."}, 401)
        runtime(request).auth.sessions.end(session.id)
    response = RedirectResponse("/app/login?ended=1", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


# -- the list ---------------------------------------------------------------------------------------


def _text(request: Request, name: str) -> str:
    value = request.query_params.get(name, "").strip()
    return "" if len(value) > _MAX_TEXT or any(ord(c) < 32 for c in value) else value


def _addressable(id: str) -> bool:
    """Whether the API's routes can name this id in a path (a "/" in it cannot be routed)."""
    return "/" not in id


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return max(1, min(int(raw), _MAX_PAGE)) if raw.isdigit() and len(raw) < 12 else 1


async def _list_context(request: Request) -> dict[str, Any]:
    q, state, workflow = _text(request, "q"), _text(request, "state"), _text(request, "workflow")
    state = state if state in views.STATES else ""
    page = _page_number(request)
    filters: dict[str, Any] = {}
    if q:
        filters["q"] = q
    if state:
        filters["state"] = state
    if workflow:
        filters["workflow_id"] = workflow
    engine = runtime(request).engine
    started = time.perf_counter()
    records, count = await engine.list_and_count_workflow_executions(
        filters, skip=(page - 1) * PAGE_SIZE, take=PAGE_SIZE, order=["-created_at"])
    pages = max(1, math.ceil(count / PAGE_SIZE))
    rows = []
    for execution in records:
        record = execution.to_dict()
        rows.append({"id": record["id"], "workflow_id": record["workflow_id"],
                     "transaction_id": record["transaction_id"], "state": record["state"],
                     "progress": views.progress(record), "created_at": views.time_text(record["created_at"]),
                     "created_iso": record["created_at"]})
    base = {k: v for k, v in (("q", q), ("state", state), ("workflow", workflow)) if v}

    def link(to: int) -> str:
        return LIST + "?" + urlencode({**base, **({"page": to} if to > 1 else {})}) if base or to > 1 else LIST

    first = (page - 1) * PAGE_SIZE
    return {"q": q, "state": state, "workflow": workflow, "page": page, "pages": pages, "count": count,
            "rows": rows, "first": first + 1 if rows else 0, "last": first + len(rows),
            "prev_url": link(page - 1) if page > 1 else None, "next_url": link(page + 1) if page < pages else None,
            "filtered": bool(base), "first_page_url": link(1),
            "live_workflows": [w for w in ([workflow] if workflow else sorted({r["workflow_id"] for r in rows}))
                               if _addressable(w)][:3],
            "known_workflows": sorted(registered_workflows()), "took_ms": round((time.perf_counter() - started) * 1000)}


@router.get("/settings/workflows")
async def list_page(request: Request) -> Response:
    """Settings → Workflows: the stored executions, newest first, 20 a page, searchable and filtered."""
    session = await _session(request)
    if session is None:
        return _to_login(request)
    return _render("list.html", session=session, **await _list_context(request))


@router.get("/settings/workflows/_rows")
async def list_rows(request: Request) -> Response:
    """The list's results alone (what the page's script swaps in when executions move)."""
    if await _session(request) is None:
        return _unauthorized()
    return _render("_rows.html", **await _list_context(request))


# -- one execution ----------------------------------------------------------------------------------


async def _detail_context(request: Request, id: str) -> dict[str, Any] | None:
    if not id or len(id) > _MAX_TEXT or any(ord(c) < 32 for c in id):
        return None
    try:
        record = (await runtime(request).engine.retrieve_workflow_execution(id)).to_dict()
    except StepworkError as exc:
        if exc.type == StepworkError.Types.NOT_FOUND:
            return None
        raise
    steps = views.steps_of(record)
    by_stage: list[list[views.StepView]] = []
    for step in steps:
        while len(by_stage) <= step.stage:
            by_stage.append([])
        by_stage[step.stage].append(step)
    state = record["state"]
    return {"record": record, "steps": steps, "stages": by_stage, "progress": views.progress(record),
            "payload": views.pretty(((record.get("context") or {}).get("data") or {}).get("payload")),
            "raw": views.pretty(record), "finished": state in views.FINISHED,
            "addressable": _addressable(record["workflow_id"]) and _addressable(record["transaction_id"]),
            "can_cancel": state in ("not_started", "invoking", "done"),
            "created_at": views.time_text(record.get("created_at")),
            "updated_at": views.time_text(record.get("updated_at"))}


@router.get("/settings/workflows/{id:path}/_body")
async def detail_body(request: Request, id: str) -> Response:
    """An execution's body alone (what the page's script swaps in while it moves). Declared before the
    page: with ``{id:path}`` (an id may hold "/"), the page's route would take ``…/_body`` too."""
    if await _session(request) is None:
        return _unauthorized()
    context = await _detail_context(request, id)
    if context is None:
        return JSONResponse({"type": "not_found", "message": f'No execution "{id[:64]}".'}, 404)
    return _render("_body.html", **context)


@router.get("/settings/workflows/{id:path}")
async def detail_page(request: Request, id: str) -> Response:
    """One execution: its state, progress, step graph, steps, payload, raw JSON and actions."""
    session = await _session(request)
    if session is None:
        return _to_login(request)
    context = await _detail_context(request, id)
    if context is None:
        return _render("missing.html", 404, session=session, id=id)
    return _render("detail.html", session=session, **context)
