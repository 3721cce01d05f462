"""The journal of the multi-process harness: one JSON line per step invocation, compensation,
completion from outside, finish event and run call, appended by each worker process to a file of its
own (``journal-{worker}-{pid}.jsonl``) with one ``write`` on an ``O_APPEND`` descriptor, so a line is
whole even if the process is killed right after (the kernel keeps it; no fsync, the machine stays up).

This module registers no workflow: the test process imports it to read journals, and must not define
the harness workflows (its engine would then recover or fire them).

Line fields: ``t`` (wall clock, ``time.time()``), ``pid``, ``worker`` (index), ``event``, and per event:

- ``start`` / ``return`` / ``raise``: a step's function began, returned, raised (``wf``, ``tid``,
  ``step``, ``action`` = invoke|compensate, ``attempt``, ``key`` = the idempotency key);
- ``complete``: ``set_step_success`` by this process for ``key`` (``outcome``: ok, or the error);
- ``finish``: an ``on_finish`` event seen by this process's engine (``wf``, ``tid``, ``state``);
- ``run``: an ``engine.run`` call of this process ended (``wf``, ``tid``, ``outcome``);
- ``ready`` / ``stopping``: the worker's engine started / is stopping.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["EXPECTED_STATE", "KIND_WORKFLOW", "STEPS", "TICK_WORKFLOW", "Journal", "parse_runs", "read_journals",
           "transaction_ids"]

# The harness workflows and their steps in invoke order (the checker's notion of "progress").
STEPS: dict[str, list[str]] = {
    "harness-slow": [f"slow-{i}" for i in range(1, 6)],
    "harness-fail": ["fail-1", "fail-2", "fail-3"],
    "harness-retry": ["retry-1", "retry-2", "retry-3"],
    "harness-async": ["async-1", "async-2", "async-3"],
    "harness-tick": ["tick"],
}
EXPECTED_STATE = {"harness-slow": "done", "harness-fail": "reverted", "harness-retry": "done",
                  "harness-async": "done", "harness-tick": "done"}
KIND_WORKFLOW = {"slow": "harness-slow", "fail": "harness-fail", "retry": "harness-retry", "async": "harness-async"}
TICK_WORKFLOW = "harness-tick"


class Journal:
    """This process's journal file in ``directory``."""

    def __init__(self, directory: Path, worker: int) -> None:
        self.worker = worker
        self.pid = os.getpid()
        self.path = directory / f"journal-{worker}-{self.pid}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"t": time.time(), "pid": self.pid, "worker": self.worker, "event": event, **fields})
        os.write(self._fd, (line + "\n").encode())


def read_journals(directory: Path) -> list[dict[str, Any]]:
    """Every journal line of every process in ``directory``, oldest first (a torn last line, from a
    process killed in the middle of a write, is skipped)."""
    lines: list[dict[str, Any]] = []
    for path in sorted(directory.glob("journal-*.jsonl")):
        for raw in path.read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
    lines.sort(key=lambda line: line["t"])
    return lines


def parse_runs(spec: str) -> list[tuple[str, int]]:
    """``"slow=3,fail=1"`` -> ``[("slow", 3), ("fail", 1)]``."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kind, _, count = part.partition("=")
        if kind not in KIND_WORKFLOW:
            raise ValueError(f"unknown run kind {kind!r} (known: {sorted(KIND_WORKFLOW)})")
        out.append((kind, int(count or 1)))
    return out


def transaction_ids(prefix: str, runs: list[tuple[str, int]]) -> list[tuple[str, str]]:
    """``(workflow, transaction id)`` of every run a worker starts (ids ``{prefix}-{kind}-{i}``), the
    kinds interleaved, in the order the worker starts them."""
    per_kind = [[(KIND_WORKFLOW[kind], f"{prefix}-{kind}-{i}") for i in range(count)] for kind, count in runs]
    out: list[tuple[str, str]] = []
    for i in range(max((len(k) for k in per_kind), default=0)):
        out.extend(k[i] for k in per_kind if i < len(k))
    return out
