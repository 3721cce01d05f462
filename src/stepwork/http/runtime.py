"""What the routes share: the engine, the auth check, and the work that outlives a request.

A route that starts work which may take long (a run, a completion that continues the workflow, a
cancel that compensates) waits for it at most ``wait_timeout`` seconds; past that, the work goes on
in the background (a task of the server, logged if it fails) and the route answers with what is
known. The app's shutdown cancels what is still going; a stored execution's lease then runs out and
the engine's recovery (in this or another process) resumes it.

:meth:`Runtime.shut_down` tells the open event streams to end: ``stepwork serve`` calls it as soon
as the server starts shutting down (before it waits for open connections), so a Ctrl-C is not held
up by a subscribed client; the app's lifespan shutdown calls it too (:meth:`Runtime.close`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request

from stepwork.container import Container
from stepwork.engine.engine import WorkflowEngine
from stepwork.errors import StepworkError
from stepwork.http.auth import Authenticator

__all__ = ["Runtime", "no_query_parameters", "runtime"]

logger = logging.getLogger("stepwork.http")
T = TypeVar("T")


@dataclass
class Runtime:
    """The state of one app."""

    engine: WorkflowEngine
    auth: Authenticator
    wait_timeout: float
    container: Container
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    shutting_down: asyncio.Event = field(default_factory=asyncio.Event)
    _awaited: set[asyncio.Task[Any]] = field(default_factory=set)

    async def settle(self, work: Coroutine[Any, Any, T], name: str) -> tuple[bool, T | None]:
        """Run ``work``; ``(True, result)`` if it ends within ``wait_timeout`` seconds (its error is
        raised), else ``(False, None)`` and it goes on in the background."""
        task = asyncio.create_task(work, name=name)
        self.background.add(task)
        self._awaited.add(task)
        task.add_done_callback(self._done)
        try:
            await asyncio.wait({task}, timeout=self.wait_timeout)
        finally:
            self._awaited.discard(task)
        if task.done():  # (done within the wait: its outcome goes to the route, not to the log)
            return True, task.result()
        return False, None

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if task in self._awaited or task.cancelled():
            return  # a route is still waiting for it: the route answers (or raises) its outcome
        error = task.exception()
        if error is not None:
            logger.info("%s ended with %s: %s", task.get_name(), type(error).__name__, error)

    def shut_down(self) -> None:
        """Tell the open event streams to end (the server is stopping)."""
        self.shutting_down.set()

    async def close(self) -> None:
        """End the event streams and cancel the background work still going."""
        self.shut_down()
        tasks = list(self.background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def runtime(request: Request) -> Runtime:
    """The runtime of the app serving ``request``."""
    state: Runtime = request.app.state.stepwork
    return state


def no_query_parameters(request: Request) -> None:
    """A route dependency: 400 ``invalid_data`` for any query parameter (the routes that use it
    declare none)."""
    names = sorted(set(request.query_params))
    if names:
        raise StepworkError(StepworkError.Types.INVALID_DATA,
                            f'Unknown query parameter "{names[0][:64]}"; this route takes no query parameters.')
