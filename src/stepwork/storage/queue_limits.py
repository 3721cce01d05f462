"""Per-workflow concurrency limits of queued runs: which of the claimable rows a claim takes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

__all__ = ["pick"]

R = TypeVar("R", bound=Sequence[Any])


def pick(rows: Iterable[R], limit: int, limits: Mapping[str, int], running: Mapping[str, int]) -> list[R]:
    """The first ``limit`` of ``rows`` (in claiming order; each starts with its workflow id) that keep
    every limited workflow at or under its limit, counting the ``running`` executions of each."""
    taken: dict[str, int] = {}
    out: list[R] = []
    for row in rows:
        if len(out) >= limit:
            break
        workflow_id = row[0]
        cap = limits.get(workflow_id)
        if cap is not None:
            if running.get(workflow_id, 0) + taken.get(workflow_id, 0) >= cap:
                continue
            taken[workflow_id] = taken.get(workflow_id, 0) + 1
        out.append(row)
    return out
