"""The PostgreSQL checkpoint statements: one statement (a CTE) per insert or write, so one round trip.

Each is built once per shape (kind, number of step rows up to the ``VALUES`` limit, whether timers
are deleted) and cached, so a process prepares a handful of statement texts. Hand-written, not
SQLAlchemy: see docs/decisions.md ("The schema is defined once; checkpoints are written by hand").
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from stepwork.storage.base import StepRow
from stepwork.storage.rows import FINISHED, json_text

__all__ = ["FENCE", "KEY", "MAX_VALUES_ROWS", "ROW_COLUMNS", "TS", "epoch", "insert_sql", "step_params", "write_sql"]

MAX_VALUES_ROWS = 8  # steps in one checkpoint written from a VALUES list; more travel as arrays
KEY = "workflow_id = %(wf)s AND transaction_id = %(tx)s AND run_id = %(run)s"
FENCE = f"{KEY} AND version = %(version)s AND lease_owner = %(owner)s"
TS = "to_timestamp(%({})s::float8)"


def epoch(column: str) -> str:
    """``column`` (a timestamp) as epoch seconds."""
    return f"extract(epoch from {column})::float8"


# An execution row's columns, in the order of ``rows.execution_row`` ({records}: its two documents, or NULLs).
ROW_COLUMNS = ("id, workflow_id, transaction_id, run_id, state, {records}, retention_time, "
               f"{epoch('created_at')}, {epoch('updated_at')}, {epoch('deleted_at')}, version, lease_owner, "
               f"{epoch('lease_expires_at')}, progress, definition_hash")


def _steps_source(count: int) -> str:
    """Where the step rows come from: a ``VALUES`` list for a few (the common case, and ~40 µs a
    checkpoint cheaper than arrays), arrays (``unnest``) for more, so the statement texts stay few."""
    if count > MAX_VALUES_ROWS:
        return ("unnest(%(s_index)s::int[], %(s_record)s::text[], %(s_output)s::text[], %(s_cin)s::text[], "
                "%(s_cout)s::text[])")
    rows = ", ".join(f"(%(i{n})s::int, %(r{n})s::text, %(o{n})s::text, %(ci{n})s::text, %(co{n})s::text)"
                     for n in range(count))
    return f"(VALUES {rows})"


def _upsert_steps(gate: str, count: int) -> str:
    """The upsert of ``count`` step rows, run only if ``gate`` (a CTE name) returned a row."""
    return (
        "INSERT INTO workflow_execution_step (workflow_id, transaction_id, run_id, step_index, record, output, "
        "compensate_input, compensate_output) "
        f"SELECT %(wf)s, %(tx)s, %(run)s, s.i, s.r, s.o, s.ci, s.co FROM {_steps_source(count)} AS s(i, r, o, ci, co) "
        f"WHERE EXISTS (SELECT 1 FROM {gate}) "
        "ON CONFLICT (workflow_id, transaction_id, run_id, step_index) DO UPDATE SET record = excluded.record, "
        "output = excluded.output, compensate_input = excluded.compensate_input, "
        "compensate_output = excluded.compensate_output")


def _delete_timers(gate: str, *, own: bool, listed: bool) -> str:
    """The deletion of the execution's own timers (``own``) and/or those of ``%(timer_ids)s``
    (``listed``), run only if ``gate`` returned a row. One statement for both, as a row must not be
    deleted by two parts of one statement."""
    which = " OR ".join(([f"({KEY})"] if own else []) + (["id = ANY(%(timer_ids)s::text[])"] if listed else []))
    return f"DELETE FROM workflow_timer WHERE ({which}) AND EXISTS (SELECT 1 FROM {gate})"


_INSERT = (
    "INSERT INTO workflow_execution (id, workflow_id, transaction_id, run_id, state, execution, context, "
    "retention_time, created_at, updated_at, deleted_at, version, lease_owner, lease_expires_at, progress, "
    "definition_hash) "
    "VALUES (%(id)s, %(wf)s, %(tx)s, %(run)s, %(state)s, %(execution)s, %(context)s, %(retention)s::float8, "
    f"{TS.format('created')}, {TS.format('updated')}, {TS.format('deleted')}, %(version)s, %(owner)s, "
    f"{TS.format('lease_until')}, %(progress)s, %(definition_hash)s)")


@cache
def insert_sql(count: int, timers: bool) -> str:
    """The insert of an execution with ``count`` step rows, deleting ``%(timer_ids)s`` if ``timers``.
    It returns a row if the execution was inserted, none if its key is taken (``ON CONFLICT DO
    NOTHING``: a conflict is an answer, not an error, so it never fails a group commit)."""
    if not count and not timers:
        return f"{_INSERT} ON CONFLICT DO NOTHING RETURNING 1"
    parts = [f"ins AS ({_INSERT} ON CONFLICT DO NOTHING RETURNING 1)"]
    if count:
        parts.append(f"st AS ({_upsert_steps('ins', count)})")
    if timers:
        parts.append(f"tm AS ({_delete_timers('ins', own=False, listed=True)})")
    return "WITH " + ", ".join(parts) + " SELECT 1 FROM ins"


# The header update of a checkpoint, by kind (what the SQLite store does, statement for statement).
_UPDATE = {
    # A checkpoint within one state (``state=None``): only unindexed columns change, so the update is
    # HOT (no index entry written), and the lease stays as it is (the renewal loop extends it).
    "same_state": ("UPDATE workflow_execution SET progress = COALESCE(%(progress)s, progress), "
                   "version = version + 1"),
    # A checkpoint that moves the state: updated_at moves with it; the lease stays.
    "checkpoint": ("UPDATE workflow_execution SET progress = %(progress)s, version = version + 1, "
                   f"state = %(state)s, updated_at = {TS.format('now')}"),
    # Suspending: release the lease.
    "release": ("UPDATE workflow_execution SET state = %(state)s, progress = %(progress)s, version = version + 1, "
                f"updated_at = {TS.format('now')}, lease_owner = NULL, lease_expires_at = NULL"),
    # Finishing: release the lease, start the retention clock, replace the records if given.
    "finish": ("UPDATE workflow_execution SET state = %(state)s, progress = %(progress)s, version = version + 1, "
               f"updated_at = {TS.format('now')}, lease_owner = NULL, lease_expires_at = NULL, "
               "execution = COALESCE(%(execution)s::text, execution), context = COALESCE(%(context)s::text, context), "
               "expires_at = to_timestamp(%(now)s::float8 + retention_time)"),
}


@cache
def write_sql(count: int, kind: str, timers: bool) -> str:
    """The checkpoint statement of ``kind`` (``delete`` or one of ``_UPDATE``) for ``count`` step
    rows (counts above the ``VALUES`` limit share one), deleting ``%(timer_ids)s`` if ``timers``."""
    if kind == "delete":  # a finish without retention: the execution, its steps and its timers go
        return (f"WITH del AS (DELETE FROM workflow_execution WHERE {FENCE} RETURNING version), "
                f"st AS (DELETE FROM workflow_execution_step WHERE {KEY} AND EXISTS (SELECT 1 FROM del)), "
                f"tm AS ({_delete_timers('del', own=True, listed=timers)}) "
                "SELECT version + 1 FROM del")
    parts = [f"upd AS ({_UPDATE[kind]} WHERE {FENCE} RETURNING version)"]
    if count:
        parts.append(f"st AS ({_upsert_steps('upd', count)})")
    if kind == "finish" or timers:
        parts.append(f"tm AS ({_delete_timers('upd', own=kind == 'finish', listed=timers)})")
    return "WITH " + ", ".join(parts) + " SELECT version FROM upd"


def step_params(steps: Sequence[StepRow]) -> tuple[int, dict[str, Any]]:
    """The statement's step count (its cache key) and the step parameters."""
    # One row per index, the last one winning (as SQLite's executemany of upserts does): an
    # ``ON CONFLICT DO UPDATE`` cannot touch the same row twice in one statement.
    rows = list({s.index: s for s in steps}.values()) if len(steps) > 1 else list(steps)
    if len(rows) > MAX_VALUES_ROWS:
        return MAX_VALUES_ROWS + 1, {
            "s_index": [s.index for s in rows],
            "s_record": [json_text(s.record) for s in rows],
            "s_output": [s.output for s in rows],
            "s_cin": [s.compensate_input for s in rows],
            "s_cout": [s.compensate_output for s in rows],
        }
    params: dict[str, Any] = {}
    for n, s in enumerate(rows):
        params[f"i{n}"] = s.index
        params[f"r{n}"] = json_text(s.record)
        params[f"o{n}"] = s.output
        params[f"ci{n}"] = s.compensate_input
        params[f"co{n}"] = s.compensate_output
    return len(rows), params


def acquire_sql(include_done: bool) -> str:
    """Take the lease of an unfinished execution (or a ``done`` one, to cancel it); a queued one
    taken so (a run call with its transaction id) leaves the queue."""
    states = ("failed", "reverted") if include_done else FINISHED
    return (f"UPDATE workflow_execution SET lease_owner = %(owner)s, lease_expires_at = {TS.format('lease_until')}, "
            f"version = version + 1, queued_at = NULL WHERE {KEY} AND state NOT IN {states} AND deleted_at IS NULL "
            f"AND (lease_owner IS NULL OR lease_owner = %(owner)s OR lease_expires_at < {TS.format('now')}) "
            "RETURNING version")
