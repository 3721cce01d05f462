"""``instrument(engine)``: OpenTelemetry spans for every run of an engine (the ``otel`` extra)."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from stepwork.errors import StepworkError

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from stepwork.engine.engine import WorkflowEngine
    from stepwork.telemetry.spans import RunTracer

__all__ = ["Instrumentation", "instrument"]

_SUBSCRIBER_ID = "stepwork.telemetry.spans"


class Instrumentation:
    """What :func:`instrument` returns: the engine's tracing, which ``uninstrument()`` removes."""

    def __init__(self, engine: WorkflowEngine, tracer: RunTracer) -> None:
        self.engine = engine
        self._tracer = tracer

    @property
    def open_runs(self) -> int:
        """How many runs have an open span now: those this process is driving at this moment."""
        return self._tracer.open_runs

    def uninstrument(self) -> None:
        """Stop making spans for this engine's runs (spans still open are ended)."""
        if _instrumented.get(self.engine) is self._tracer:  # (not a later instrumentation's)
            self.engine.subscriptions.remove_global(_SUBSCRIBER_ID)
            del _instrumented[self.engine]
        self._tracer.close()


def instrument(engine: WorkflowEngine, *, tracer_provider: TracerProvider | None = None) -> Instrumentation:
    """Make OpenTelemetry spans for every run of ``engine``: one per run (``workflow <id>``) with a
    child per step attempt (``step <name>``) and per compensation (``compensate <name>``).

    ``tracer_provider``: where the spans go (default: OpenTelemetry's global provider, set with
    ``opentelemetry.trace.set_tracer_provider``). Instrumenting the engine again replaces the
    earlier instrumentation. Needs the ``otel`` extra: ``pip install 'stepwork[otel]'``.
    """
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise StepworkError(StepworkError.Types.NOT_FOUND,
                            "instrument() needs OpenTelemetry, which is not installed: "
                            "pip install 'stepwork[otel]' (opentelemetry-api and opentelemetry-sdk).") from exc
    from stepwork.telemetry.spans import RunTracer

    if not hasattr(engine, "subscriptions"):
        raise StepworkError(StepworkError.Types.INVALID_DATA,
                            f"instrument() takes a WorkflowEngine, got {engine!r}.")
    tracer: Any = trace.get_tracer("stepwork", tracer_provider=tracer_provider)
    runs = RunTracer(tracer)
    previous = _instrumented.get(engine)
    if previous is not None:  # replaced: its open spans end now, they would get no more events
        previous.close()
    engine.subscriptions.add_global(runs, _SUBSCRIBER_ID)
    _instrumented[engine] = runs
    return Instrumentation(engine, runs)


# The tracer of each instrumented engine (weakly: an engine that goes away takes its entry along).
_instrumented: weakref.WeakKeyDictionary[WorkflowEngine, RunTracer] = weakref.WeakKeyDictionary()
