"""Step options on every path: save_response, no_compensation, thread."""

from __future__ import annotations

import threading
from typing import Any

from stepwork import StepContext, create_step

from .conftest import ExecutionPath, invoke_outputs, states


async def test_save_response_false_hides_the_output(path: ExecutionPath, wf_name: str) -> None:
    """save_response=False: later steps and the result read None."""
    hidden = create_step({"name": "hidden", "save_response": False}, lambda v: 5)
    reader = create_step("reader", lambda v: {"read": v})

    def composer(inp: Any) -> Any:
        out = hidden(inp)
        return {"reader": reader(out), "direct": out}

    result = await path.run(path.workflow(wf_name, composer))
    assert result.result == {"reader": {"read": None}, "direct": None}
    assert states(result)["hidden"] == ("done", "ok", "dormant", "idle")
    assert invoke_outputs(result).get("hidden") is None


async def test_no_compensation_and_thread_steps(path: ExecutionPath, wf_name: str) -> None:
    """no_compensation=True: reverted without a call; a thread step runs off the loop's thread, is retried
    and compensated."""
    loop_thread = threading.get_ident()
    log: list[Any] = []

    def in_thread(inp: Any, ctx: StepContext) -> str:
        log.append(("thread", ctx.attempt, threading.get_ident() != loop_thread))
        if ctx.attempt == 1:
            raise OSError("first attempt")
        return "T"

    quiet = create_step({"name": "quiet", "no_compensation": True}, lambda v: 1, lambda c: log.append("quiet undo"))
    threaded = create_step({"name": "threaded", "thread": True, "max_retries": 1}, in_thread,
                           lambda c: log.append(("threaded undo", c)))

    def fail(_: Any) -> None:
        raise RuntimeError("stop")

    stop = create_step("stop", fail)

    def composer(inp: Any) -> None:
        quiet(inp)
        threaded(inp)
        stop(inp)

    result = await path.run(path.workflow(wf_name, composer), throw_on_error=False)
    assert log == [("thread", 1, True), ("thread", 2, True), ("threaded undo", "T")]
    assert result.transaction.state == "reverted"
    assert states(result) == {"quiet": ("done", "ok", "reverted", "idle"),
                              "threaded": ("done", "ok", "reverted", "ok"),
                              "stop": ("failed", "permanent_failure", "reverted", "idle")}
