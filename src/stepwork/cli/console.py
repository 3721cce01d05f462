"""Where the command line writes: rich consoles on stdout and stderr, state colours, JSON, logging.

Consoles are made when first asked for (not at import), so they write to whatever ``sys.stdout`` and
``sys.stderr`` are then; colour is used only on a terminal.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

__all__ = ["STATE_STYLES", "err", "error_line", "out", "print_json", "setup_logging", "state_text", "to_json",
           "when"]

STATE_STYLES = {
    "done": "green", "reverted": "yellow", "failed": "bold red", "invoking": "cyan",
    "compensating": "magenta", "waiting_to_compensate": "magenta", "not_started": "dim",
    "skipped": "dim", "skipped_failure": "dim yellow", "dormant": "dim", "timeout": "red",
    "waiting_response": "cyan", "temp_failure": "yellow", "permanent_failure": "red", "ok": "green",
    "idle": "dim",
}


def out() -> Console:
    """The console on standard output (wide enough for tables when not a terminal)."""
    return Console(file=sys.stdout, highlight=False, soft_wrap=False,
                   width=None if sys.stdout.isatty() else 160)


def err() -> Console:
    """The console on standard error."""
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def error_line(message: str) -> None:
    """Print ``error: message`` on stderr (red on a terminal)."""
    text = Text("error: ", style="bold red")
    text.append(message)
    err().print(text)


def state_text(state: str) -> Text:
    """A state as coloured text."""
    return Text(state, style=STATE_STYLES.get(state, ""))


def to_json(value: Any, *, indent: int | None = 2) -> str:
    """JSON of ``value``; what JSON cannot hold (datetimes, models...) is written as text."""
    def fallback(obj: Any) -> Any:
        if isinstance(obj, dt.datetime):
            return obj.isoformat()
        dump = getattr(obj, "model_dump", None)
        if callable(dump):
            return dump(mode="json")
        return str(obj)
    return json.dumps(value, indent=indent, default=fallback, ensure_ascii=False)


def print_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout (plain, so that it can be piped to ``jq``)."""
    sys.stdout.write(to_json(value) + "\n")
    sys.stdout.flush()


def when(epoch_ms: int | None) -> str:
    """Epoch milliseconds as a local ``YYYY-MM-DD HH:MM:SS`` (empty for ``None``)."""
    if epoch_ms is None:
        return ""
    return dt.datetime.fromtimestamp(epoch_ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


class _OneLine(logging.Formatter):
    """Log records as one line each: the exception's message is appended, its traceback is not."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f" ({type(exc).__name__}: {exc})"
        return " ".join(text.split())


def setup_logging(level: int) -> None:
    """Send stepwork's log records (and uvicorn's) to stderr, one line each, from ``level`` up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    for name in ("stepwork", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False
