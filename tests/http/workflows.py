"""The workflows the HTTP tests run through the API (registered on import, process-wide)."""

from __future__ import annotations

import asyncio
from typing import Any

from stepwork import StepResponse, WorkflowResponse, create_step, create_workflow

STORED = {"store": True, "retention_time": 3600}
undone: list[str] = []  # what the compensations undid (the server runs in this process)


def _greet(data: dict[str, Any]) -> StepResponse[dict[str, str], str]:
    if data.get("fail"):
        raise ValueError(f"cannot greet {data.get('name')}")
    return StepResponse({"greeting": f"hello {data['name']}"}, data["name"])


greet = create_step("http-greet", _greet, lambda name: undone.append(f"greet {name}"))
hello = create_workflow({"name": "http-hello", **STORED}, lambda data: WorkflowResponse(greet(data)))

prepare = create_step("http-prepare", lambda data: StepResponse({"prepared": data}, data),
                      lambda data: undone.append(f"prepare {data}"))
approve = create_step({"name": "http-approve", "async": True}, lambda _: None)
finish = create_step("http-finish", lambda approved: {"finished": approved})


def _approval(data: Any) -> WorkflowResponse[Any]:
    prepare(data)
    return WorkflowResponse(finish(approve(data)))


approval = create_workflow({"name": "http-approval", **STORED}, _approval)


async def _slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


nap = create_step("http-nap", _slow)
slow = create_workflow({"name": "http-slow", **STORED}, lambda seconds: WorkflowResponse(nap(seconds)))
