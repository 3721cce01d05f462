"""Reading the exported spans back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    """The finished spans called ``name``, oldest first."""
    return [s for s in exporter.get_finished_spans() if s.name == name]


def one(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    """The one finished span called ``name``."""
    found = named(exporter, name)
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


def is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    """Whether ``child``'s parent is ``parent`` (same trace)."""
    return (child.parent is not None and parent.context is not None and child.context is not None
            and child.parent.span_id == parent.context.span_id and child.context.trace_id == parent.context.trace_id)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for ``check()`` (a background loop of the engine does the work), failing after ``timeout``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        assert loop.time() < end, "the condition did not come true"
        await asyncio.sleep(0.01)
