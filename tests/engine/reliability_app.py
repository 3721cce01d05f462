"""A worker for the multi-process reliability test (R19):
`python -m tests.engine.reliability_app URL WORKFLOW WORKER COUNT DIR`.

It defines the stored workflow WORKFLOW (five steps: a plain one, a coroutine that yields, two in
parallel, a plain one), starts an engine on URL, writes DIR/ready-WORKER, waits until DIR/go exists
(so every worker starts at the same moment), runs COUNT executions of the workflow concurrently
(transaction ids "wWORKER-i"), and prints one JSON line:
``{"states": [...], "errors": [...], "logged": [...]}``, where ``logged`` holds every record of
level WARNING or worse that stepwork logged meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from stepwork import create_step, create_workflow, parallelize
from stepwork.engine.engine import WorkflowEngine


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname} {record.getMessage()} {record.exc_text or ''}")


def build(name: str) -> Any:
    async def reserve(value: dict[str, int]) -> dict[str, int]:
        await asyncio.sleep(0)  # yield, so the 25 executions of this process interleave
        return {"n": value["n"], "reserved": 1}

    first = create_step("validate", lambda value: {"n": value["n"]})
    second = create_step("reserve", reserve)
    left = create_step("left", lambda value: value["n"] * 2)
    right = create_step("right", lambda value: value["n"] * 3)
    last = create_step("total", lambda parts: parts[0] + parts[1])

    def compose(inp: Any) -> Any:
        reserved = second(first(inp))
        a, b = parallelize(left(reserved), right(reserved))
        return last([a, b])

    return create_workflow({"name": name, "retention_time": 3600}, compose)


async def main(url: str, name: str, worker: int, count: int, directory: Path) -> None:
    collect = _Collect()
    logging.getLogger("stepwork").addHandler(collect)
    workflow = build(name)
    async with WorkflowEngine(url, poll_interval=0.05) as engine:
        (directory / f"ready-{worker}").write_text("1")
        while not (directory / "go").exists():
            await asyncio.sleep(0.005)
        outcomes = await asyncio.gather(
            *[engine.run(workflow, {"n": i}, transaction_id=f"w{worker}-{i}", throw_on_error=False)
              for i in range(count)], return_exceptions=True)
    states = [o.transaction.state.value for o in outcomes if not isinstance(o, BaseException)]
    results = [o.result for o in outcomes if not isinstance(o, BaseException)]
    errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    print(json.dumps({"states": states, "results": results, "errors": errors, "logged": collect.messages}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])))
