"""Observability: OpenTelemetry spans of runs and steps (``instrument``, the ``otel`` extra) and
log records as JSON lines (``JsonLogFormatter``). Importing this never imports OpenTelemetry."""

from stepwork.telemetry.instrument import Instrumentation, instrument
from stepwork.telemetry.logs import JsonLogFormatter

__all__ = ["Instrumentation", "JsonLogFormatter", "instrument"]
