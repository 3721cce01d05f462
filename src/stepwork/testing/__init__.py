"""Helpers for testing your own workflows: fast, deterministic, without servers or sleeping.

- :class:`FakeClock`: time that moves when the test says (``await clock.advance(3600)``), firing the
  retry intervals, timeouts, awaiting retries and schedules that became due.
- :func:`override_steps`, :func:`fail_step`, :func:`crash_after`: change what steps do for the runs
  started inside a ``with`` block (replace them, fail them on chosen attempts, time them out, crash
  right after a step's checkpoint).
- :func:`timeline`: what a run did (``.invoked``, ``.compensated``, ``.failed``, ``.skipped``,
  ``.step(name)``), read from its result or its stored execution.
- The pytest plugin (registered when stepwork is installed; its fixtures need pytest-asyncio:
  ``pip install "stepwork[testing]"``) adds the fixtures ``stepwork_engine``,
  ``stepwork_sqlite_engine`` and ``stepwork_clock``; see :mod:`stepwork.testing.plugin`.
"""

from stepwork.testing.clock import FakeClock
from stepwork.testing.patching import (
    InjectedStepFailure,
    Recorder,
    SimulatedCrash,
    crash_after,
    fail_step,
    override_steps,
    recording,
)
from stepwork.testing.timeline import StepView, Timeline, timeline

__all__ = [
    "FakeClock",
    "InjectedStepFailure",
    "Recorder",
    "SimulatedCrash",
    "StepView",
    "Timeline",
    "crash_after",
    "fail_step",
    "override_steps",
    "recording",
    "timeline",
]
