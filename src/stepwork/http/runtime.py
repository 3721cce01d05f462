"""What the routes share: the engine, the auth check, and the work that outlives a request.

A route that starts work which may take long (a run, a completion that continues the workflow, a
cancel that compensates) waits for it at most ``wait_timeout`` seconds; past that, the work goes on
in the background (a task of the server, logged if it fails) and the route answers with what is
known. The app's shutdown cancels what is still going; a stored execution's lease then runs out and
the engine's recovery (in this or another process) resumes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request

from stepwork.engine.engine import WorkflowEngine
from stepwork.http.auth import Authenticator

__all__ = ["Runtime", "runtime"]

logger = logging.getLogger("stepwork.http")
T = TypeVar("T")


@dataclass
class Runtime:
    """The state of one app."""

    engine: WorkflowEngine
    auth: Authenticator
    wait_timeout: float
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    async def settle(self, work: Coroutine[Any, Any, T], name: str) -> tuple[bool, T | None]:
        """Run ``work``; ``(True, result)`` if it ends within ``wait_timeout`` seconds (its error is
        raised), else ``(False, None)`` and it goes on in the background."""
        task = asyncio.create_task(work, name=name)
        self.background.add(task)
        task.add_done_callback(self._done)
        done, _ = await asyncio.wait({task}, timeout=self.wait_timeout)
        if task in done:
            return True, task.result()
        return False, None

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Read here, so a background failure is logged once (a settled one was raised to its route).
            logger.info("%s ended with %s: %s", task.get_name(), type(task.exception()).__name__,
                        task.exception())

    async def close(self) -> None:
        """Cancel the background work still going."""
        tasks = list(self.background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def runtime(request: Request) -> Runtime:
    """The runtime of the app serving ``request``."""
    state: Runtime = request.app.state.stepwork
    return state
