"""``FakeClock``: time that moves only when a test says so."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from stepwork.errors import StepworkError

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine

__all__ = ["FakeClock"]

_START = 1_800_000_000.0  # 2027-01-15T08:00:00Z: a fixed, recognizable start


class FakeClock:
    """A wall clock for engines under test: ``time()`` returns the fake time; ``await advance(s)``
    moves it forward and fires, before it returns, every timer that became due (retry intervals,
    timeouts, awaiting retries, schedules, retention is then due for cleanup, expired leases are
    recovered).

    Pass it as ``WorkflowEngine(..., clock=clock)``; the engine attaches itself to it.
    """

    def __init__(self, start: float = _START) -> None:
        self._now = float(start)
        self._engines: list[WorkflowEngine] = []

    def time(self) -> float:
        """The fake time, in epoch seconds."""
        return self._now

    def attach(self, engine: WorkflowEngine) -> None:
        """Called by an engine created with this clock: advancing fires its timers."""
        if engine not in self._engines:
            self._engines.append(engine)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and let everything that became due run.

        Moving backwards raises ``StepworkError`` (``invalid_argument``): time never goes back.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds != seconds:
            raise StepworkError(StepworkError.Types.INVALID_ARGUMENT,
                                f"advance() takes a number of seconds, got {seconds!r}.")
        if seconds < 0:
            raise StepworkError(StepworkError.Types.INVALID_ARGUMENT,
                                f"A clock cannot move backwards (advance({seconds!r})); time only goes forward.")
        await self.settle()  # what is due at the current time first (e.g. arm new schedules)
        self._now += float(seconds)
        await self.settle()

    async def settle(self, rounds: int = 20) -> None:
        """Fire what is due now, repeatedly, until nothing more happens (or ``rounds`` passes)."""
        for _ in range(rounds):
            await asyncio.sleep(0)  # let background steps and callbacks run
            busy = False
            for engine in self._engines:
                if engine.started:
                    before = await engine.store.next_due()
                    await engine.fire_due()
                    after = await engine.store.next_due()
                    busy = busy or (before is not None and before <= self._now and before != after)
            if not busy:
                await asyncio.sleep(0)
                return

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"
