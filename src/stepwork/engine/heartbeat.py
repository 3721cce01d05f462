"""Worker heartbeats: every started engine keeps a row in the shared ``stepwork_worker`` table (its
host, process, concurrency, and the workflow versions its process defines), renewed with its
leases. From those rows come worker health (the admin API's ``/admin/workers``) and which workflow
versions some running process has: an unfinished execution of a version none has is *stale*."""

from __future__ import annotations

import datetime as dt
import os
import socket
from typing import TYPE_CHECKING, Any

from stepwork.engine.registry import registry_generation
from stepwork.storage.base import WorkerRow

if TYPE_CHECKING:
    from stepwork.engine.engine import WorkflowEngine

__all__ = ["KEEP_STOPPED", "beat", "describe_workers", "live_definitions", "refresh", "stopped"]

KEEP_STOPPED = 86_400.0  # seconds a silent or stopped worker's row is kept (shown as gone), then removed


def _row(engine: WorkflowEngine, now: float) -> WorkerRow:
    return WorkerRow(engine.owner, socket.gethostname(), os.getpid(), engine.queue.concurrency, engine.lease_ttl,
                     engine.definitions.described(), engine.started_at or now, now)


async def beat(engine: WorkflowEngine) -> None:
    """Write this engine's heartbeat."""
    generation = registry_generation()
    await engine.store.heartbeat(_row(engine, engine.clock.time()))
    engine.beat_generation = generation


async def refresh(engine: WorkflowEngine) -> None:
    """Beat now if the process's workflows changed since the last beat (a version registered or
    removed), so other processes see at once which versions live engines have."""
    if engine.beat_generation != registry_generation():
        await beat(engine)


async def stopped(engine: WorkflowEngine) -> None:
    """Mark this engine stopped (its row stays a while, shown as stopped)."""
    await engine.store.worker_stopped(engine.owner, engine.clock.time())


def _alive(worker: WorkerRow, now: float) -> bool:
    return worker.stopped_at is None and worker.heartbeat_at + worker.lease_ttl >= now


async def live_definitions(engine: WorkflowEngine) -> tuple[set[str], set[str]]:
    """``(workflow ids, definition hashes)`` that some live engine sharing the database defines."""
    now = engine.clock.time()
    names: set[str] = set()
    hashes: set[str] = set()
    if engine.started:  # this process's registry as it is now (its row is as of its last beat)
        names, hashes = engine.definitions.runnable()
    for worker in await engine.store.workers():
        if _alive(worker, now):
            if worker.id == engine.owner and engine.started:
                continue
            for workflow_id, _version, definition_hash in worker.definitions:
                names.add(workflow_id)
                hashes.add(definition_hash)
    return names, hashes


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")


async def describe_workers(engine: WorkflowEngine) -> list[dict[str, Any]]:
    """Every worker seen in the last day, most recent heartbeat first, as JSON-ready dicts (see
    :meth:`WorkflowEngine.list_workers`)."""
    now = engine.clock.time()
    owned = await engine.store.owned_counts()
    out = []
    for w in await engine.store.workers():
        alive = _alive(w, now)
        out.append({
            "id": w.id, "host": w.host, "pid": w.pid,
            "status": "alive" if alive else ("stopped" if w.stopped_at is not None else "gone"),
            "concurrency": w.concurrency, "lease_ttl": w.lease_ttl,
            "started_at": _iso(w.started_at), "last_heartbeat_at": _iso(w.heartbeat_at),
            "seconds_since_heartbeat": round(max(0.0, now - w.heartbeat_at), 3),
            "stopped_at": _iso(w.stopped_at),
            "executions_owned": owned.get(w.id, 0),  # (a gone one's, until others take them over)
            "workflows": [{"workflow_id": name, "version": version} for name, version, _ in w.definitions],
        })
    return out
