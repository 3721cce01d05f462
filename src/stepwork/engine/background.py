"""Background steps (``async`` + ``background_execution``): the invoke runs in a task of the engine's
and its outcome completes the step, as ``set_step_success``/``set_step_failure`` would.

A "background" timer stands for the task in the database: this engine keeps pushing it forward
while the task lives; if the process dies, it comes due and the step is invoked again.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from stepwork.engine import completion
from stepwork.engine.compiled import StepHandler
from stepwork.engine.context import StepContext
from stepwork.storage.base import TimerRow

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine
    from stepwork.engine.run import Run

__all__ = ["start_background"]

logger = logging.getLogger("stepwork.engine")


async def start_background(engine: WorkflowEngine, run: Run, handler: StepHandler, value: Any,
                           ctx: StepContext) -> None:
    """Start the invoke of ``handler`` in a task; its outcome completes the step later."""
    key = ctx.idempotency_key
    k = run.key
    index = handler.step.index
    timer = TimerRow(f"background:{k.workflow_id}:{k.transaction_id}:{k.run_id}:{index}:{ctx.attempt}",
                     k.workflow_id, k.transaction_id, k.run_id, "background",
                     engine.clock.time() + 2 * engine.lease_ttl, index)
    await engine.store.add_timer(timer)

    async def work() -> None:
        try:
            r = handler.invoke(value, ctx)
            if inspect.isawaitable(r):
                r = await r
        except Exception as exc:  # the step's failure, applied with its retry policy
            await _complete(completion.complete(engine, key, completion.fail(exc, False), throw_on_error=False,
                                                attempt=ctx.attempt))
        else:
            await _complete(completion.complete(engine, key, completion.succeed(r), throw_on_error=False,
                                                attempt=ctx.attempt))
        # The task's stand-in is done with (were it left, it would come due for an attempt that ended).
        with contextlib.suppress(Exception):
            await engine.store.delete_timer(timer.id)

    task = asyncio.create_task(work(), name=f"stepwork-background-{key}")
    engine.background.add(task)
    task.add_done_callback(engine.background.discard)
    engine.background_timers[task] = timer
    task.add_done_callback(lambda t: engine.background_timers.pop(t, None))


async def _complete(completion: Awaitable[Any]) -> None:
    try:
        await completion
    except Exception:
        logger.exception("Completing a background step failed.")
