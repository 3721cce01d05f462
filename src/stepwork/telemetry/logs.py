"""``JsonLogFormatter``: log records as one JSON object per line, the execution's ids included."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from stepwork.engine.log_fields import LOG_FIELDS

__all__ = ["JsonLogFormatter"]


class JsonLogFormatter(logging.Formatter):
    """Formats a log record as one line of JSON: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, and, when the record has them, ``workflow_id``, ``transaction_id``, ``run_id``,
    ``step_id`` (the engine's records carry them), ``trace_id`` and ``span_id`` (the current
    OpenTelemetry span, when OpenTelemetry is in use), ``exception`` (the traceback) and the record
    attributes named in ``fields`` (your own ``extra`` keys).

    ``handler.setFormatter(JsonLogFormatter())``; a value that is not JSON is written as its text.
    """

    def __init__(self, fields: Iterable[str] = ()) -> None:
        super().__init__()
        self.fields = (*LOG_FIELDS, *(f for f in fields if f not in LOG_FIELDS))

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self.fields:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        out.update(_trace_ids())
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def _trace_ids() -> dict[str, str]:
    """The current span's ids, if OpenTelemetry is loaded at all (this never imports it)."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}
