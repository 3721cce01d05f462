"""The workflows the browser tests watch (registered on import, process-wide, beside tests.http's)."""

from __future__ import annotations

import asyncio
from typing import Any

from stepwork import WorkflowResponse, create_step, create_workflow

STORED = {"store": True, "retention_time": 3600}
XSS_NAME = "<script>alert(1)</script>"


async def _tick(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "ticked"


tick_1 = create_step("ui-tick-1", _tick)
tick_2 = create_step("ui-tick-2", _tick)
tick_3 = create_step("ui-tick-3", _tick)
tick_4 = create_step("ui-tick-4", _tick)


def _steps(seconds: Any) -> WorkflowResponse[Any]:
    tick_1(seconds)
    tick_2(seconds)
    tick_3(seconds)
    return WorkflowResponse(tick_4(seconds))


steps = create_workflow({"name": "ui-steps", **STORED}, _steps)

echo = create_step("ui-echo", lambda data: data)
xss = create_workflow({"name": XSS_NAME, **STORED}, lambda data: WorkflowResponse(echo(data)))


def _page(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("fail"):
        raise ValueError(f"cannot page {data.get('n')}")
    return data


paged_step = create_step("ui-page", _page, lambda _: None)
paged = create_workflow({"name": "ui-paged", **STORED}, lambda data: WorkflowResponse(paged_step(data)))

# Ids the API's paths must encode ("?", "#", "%", spaces, unicode) and one with "/" (which no path can carry).
ODD_NAME = "ui odd ?#% ü"
SLASH_NAME = "ui/slash"


def _hold(_: Any) -> None:
    return None  # async: the step waits for its response from outside


def _after(held: Any) -> dict[str, Any]:
    return {"after": held}


hold = create_step({"name": "ui-hold", "async": True}, _hold)
after = create_step("ui-after", _after)


def _held(data: Any) -> WorkflowResponse[Any]:
    return WorkflowResponse(after(hold(data)))


odd = create_workflow({"name": ODD_NAME, **STORED}, _held)
slash = create_workflow({"name": SLASH_NAME, **STORED}, _held)
