"""The inline paths of a run: a fast step of a stored run (its start checkpointed, then one call),
and, in memory, a parallel stage whose coroutines go straight to ``asyncio.gather``. (The in-memory
hot path of a single step, and of a compensation, is written out in the run loop itself.)

Used when nothing but a stored run's checkpoint must happen around the call (no listener,
timeout, condition, thread or async completion): one Python call per step, no task, no StepContext
when the function takes the input alone. Anything else goes through the general path of
:class:`~stepwork.engine.step_calls.StepCalls`.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any

from stepwork.engine.context import StepContext
from stepwork.engine.faults import fault_point
from stepwork.engine.step_calls import PLAIN, WAITING, StepCalls
from stepwork.engine.step_response import _SKIP, StepResponse
from stepwork.errors import StepworkError
from stepwork.orchestration.transaction import FailureOutcome

if TYPE_CHECKING:
    from stepwork.engine.compiled import StepHandler

__all__ = ["FastPaths"]

_RETRY = FailureOutcome.RETRY


class FastPaths(StepCalls):
    """Inline calls of fast steps (mixed into ``Run``)."""

    __slots__ = ()

    async def _invoke_inline(self, i: int, h: StepHandler) -> bool:
        """The hot path: the function called inline, a coroutine awaited in place. True on success.

        For a step with nothing to enforce around its call (no condition, timeout, thread, async,
        listener): in memory it is one call; a stored run checkpoints the start first, as always.
        """
        txn = self.txn
        cp = self.cp
        attempt = txn.start_invoke(i, self.now())
        if cp is not None:
            await cp.step_started(i)
        try:
            f1 = h.invoke1
            if f1 is not None:
                r = f1(h.read_input(self))
            else:
                r = h.invoke(h.read_input(self), StepContext(self, h.name, "invoke", attempt))
            if r.__class__ not in PLAIN and inspect.isawaitable(r):
                r = await r
            if r.__class__ is StepResponse and r is not _SKIP:
                # A fast step is never async: its StepResponse completes it (what _succeeded does).
                if cp is not None:
                    fault_point("step.returned", h.name)
                    output = r.output
                    comp = r.compensate_input
                    cp.encode(i, output, comp)  # a value that cannot be stored fails the step here
                    txn.invoke_succeeded(i, output, comp)
                    cp.dirty.add(i)  # written with the next checkpoint (a sequential stage)
                    return True
                if not self.check_storable:
                    txn.invoke_succeeded(i, r.output, r.compensate_input)
                    return True
            if self._succeeded(i, r) is WAITING:
                # A nested run that waits (for a retry, say): the step waits with it, and the caller
                # sees its stage unsettled.
                if cp is not None:
                    await cp.step_settled(i)
                return False
            if cp is not None:
                cp.dirty.add(i)  # written with the next checkpoint (a sequential stage)
            return True
        except Exception as exc:
            outcome = await self._invoke_failed(i, exc)
        if outcome is _RETRY:  # retried outside the except block: no chaining to this error
            await self._invoke(i, retry=True)
        elif cp is not None:
            await cp.step_settled(i)
        return False

    async def _parallel_fast(self, members: list[int]) -> None:
        """A parallel stage of fast steps without retries: their coroutines go straight to gather."""
        txn = self.txn
        handlers = self.handlers
        now = self.now()
        pending: list[Any] = []
        waiting: list[int] = []
        for i in members:
            h = handlers[i]
            attempt = txn.start_invoke(i, now)
            try:
                f1 = h.invoke1
                if f1 is not None:
                    r = f1(h.read_input(self))
                else:
                    r = h.invoke(h.read_input(self), StepContext(self, h.name, "invoke", attempt))
            except Exception as exc:  # every step error is recorded
                await self._invoke_failed(i, exc)
                continue
            if r.__class__ not in PLAIN and inspect.isawaitable(r):
                pending.append(r)
                waiting.append(i)
            else:
                await self._fast_result(i, r)
        if not pending:
            return
        results = await asyncio.gather(*pending, return_exceptions=True)
        for i, r in zip(waiting, results, strict=True):
            if isinstance(r, BaseException):
                if not isinstance(r, (Exception, asyncio.CancelledError)):
                    raise r
                await self._invoke_failed(i, r)
            else:
                await self._fast_result(i, r)

    async def _fast_result(self, i: int, r: Any) -> None:
        try:
            self._succeeded(i, r)
        except StepworkError as exc:  # a value that cannot be stored fails the step
            await self._invoke_failed(i, exc)
