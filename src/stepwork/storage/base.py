"""The one interface every execution store implements, and the records it moves.

An execution is stored as one ``workflow_execution`` row (Medusa's columns plus what durability
needs: a fencing ``version``, the lease owner and expiry, and a small ``progress`` document) and
one row per step that has moved (its record and its output), so a checkpoint writes only what
changed: its cost does not grow with the number of steps. Timers are rows with a due time.

Times are epoch seconds (floats) in these records; stores convert to their column types.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from stepwork.errors import StepworkError

__all__ = [
    "QUEUE_CHANNEL",
    "Claimed",
    "ExecutionKey",
    "ExecutionRow",
    "ExecutionStore",
    "FinishData",
    "LeaseLostError",
    "ListQuery",
    "StepRow",
    "TimerRow",
    "WorkerRow",
]


class LeaseLostError(StepworkError):
    """This process no longer owns the execution (its lease expired and another took it over)."""

    def __init__(self, message: str) -> None:
        super().__init__(StepworkError.Types.CONFLICT, message)


class ExecutionKey(NamedTuple):
    """The primary key of a stored execution (a named tuple: made for every run, so it must be cheap)."""

    workflow_id: str
    transaction_id: str
    run_id: str


class Claimed(NamedTuple):
    """A queued execution claimed by an engine: its key, the version its lease gave it, and (where the
    store reads it with the claim) its row as the claim left it, else ``None``."""

    key: ExecutionKey
    version: int
    row: ExecutionRow | None = None


QUEUE_CHANNEL = "stepwork_queue"  # PostgreSQL: what a queued run is announced on (NOTIFY)


@dataclass(slots=True)
class StepRow:
    """The stored state of one step: its record and JSON texts of its values."""

    index: int
    record: Any  # a dict when read; on write, a dict or its JSON text (pre-encoded)
    output: str | None = None
    compensate_input: str | None = None
    compensate_output: str | None = None


@dataclass(slots=True)
class ExecutionRow:
    """One ``workflow_execution`` row."""

    id: str
    workflow_id: str
    transaction_id: str
    run_id: str
    state: str
    execution: Any  # a dict (or None) when read; on insert, a dict or its JSON text
    context: dict[str, Any] | None
    retention_time: float | None
    created_at: float
    updated_at: float
    deleted_at: float | None = None
    version: int = 0
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    progress: Any = field(default_factory=dict)  # a dict when read; on write, a dict or its JSON text
    definition_hash: str | None = None  # the stored template of the static record parts

    @property
    def key(self) -> ExecutionKey:
        """The row's primary key."""
        return ExecutionKey(self.workflow_id, self.transaction_id, self.run_id)


@dataclass(slots=True)
class FinishData:
    """What a finishing checkpoint writes besides the state: deletion (no retention), or records
    to replace the stored ``execution``/``context`` columns (``None`` keeps them: readers assemble
    the records from the initial ones, the progress and the step rows)."""

    execution: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    delete: bool = False
    timers: bool = True  # False: the execution never had a timer, so there are none to remove


@dataclass(slots=True)
class WorkerRow:
    """An engine sharing the database, as its heartbeat keeps it (the ``stepwork_worker`` table).

    ``definitions``: ``(workflow_id, version, definition_hash)`` of every workflow version its
    process defines. It beats every third of its ``lease_ttl``; one silent for longer than that is
    gone (as its leases are). ``stopped_at`` is set when it stopped cleanly."""

    id: str
    host: str
    pid: int
    concurrency: int
    lease_ttl: float
    definitions: list[tuple[str, str, str]]
    started_at: float
    heartbeat_at: float
    stopped_at: float | None = None


@dataclass(slots=True)
class TimerRow:
    """A durable timer: resume ``key`` at ``due_at`` for ``kind`` (retry, step_timeout, …)."""

    id: str
    workflow_id: str
    transaction_id: str
    run_id: str
    kind: str
    due_at: float
    step_index: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ListQuery:
    """A validated listing request."""

    filters: Mapping[str, Any]
    skip: int = 0
    take: int | None = None
    order: Sequence[tuple[str, str]] = ()
    with_records: bool = True


class ExecutionStore(Protocol):
    """Storage of executions, steps, leases and timers. All methods are coroutines."""

    async def open(self) -> None:
        """Connect and apply pending schema migrations."""

    async def close(self) -> None:
        """Release connections."""

    async def insert(self, row: ExecutionRow, steps: Sequence[StepRow], *,
                     delete_timers: Sequence[str] = ()) -> None:
        """Insert a new execution. ``StepworkError`` (``conflict``) if an unfinished execution with the
        same workflow and transaction id exists.

        ``delete_timers`` (timer ids) are deleted in the same commit, and only if the insert
        succeeds: a timer consumed by starting the execution goes with it."""

    async def latest(self, workflow_id: str, transaction_id: str) -> ExecutionRow | None:
        """The newest run of ``(workflow_id, transaction_id)``, or ``None``."""

    async def get(self, key: ExecutionKey) -> ExecutionRow | None:
        """One execution by key, or ``None``."""

    async def get_by_id(self, execution_id: str) -> ExecutionRow | None:
        """One execution by its ``wf_exec_…`` id, or ``None``."""

    async def steps(self, key: ExecutionKey) -> list[StepRow]:
        """The stored rows of the steps that have moved."""

    async def write(self, key: ExecutionKey, owner: str, version: int, *, state: str | None,
                    progress: Any, steps: Sequence[StepRow], lease_until: float | None,
                    finish: FinishData | None = None, now: float, delete_timers: Sequence[str] = ()) -> int:
        """Checkpoint: upsert ``steps``, update the header, bump the version; one commit.

        ``state=None`` means the state did not change since the last write (and ``updated_at``
        stays), ``progress=None`` that the progress did not either (a store may then write the step
        rows alone, fenced on the lease, and leave the version as it is); a release
        (``lease_until=None``) or a finish always passes both.

        Raises :class:`LeaseLostError` unless the row still has ``version`` and ``owner``.
        ``lease_until=None`` releases the lease. Returns the new version.

        ``delete_timers`` (timer ids) are deleted in the same commit, and only if the write is not
        fenced out: a consumed timer's removal commits with its effect, or not at all.
        """

    async def write_steps(self, key: ExecutionKey, owner: str, version: int, steps: Sequence[StepRow]) -> int:
        """The common checkpoint of a step boundary: upsert ``steps`` (no index given twice) and
        nothing else, fenced like :meth:`write` (``state=None, progress=None``), in one commit.
        Returns the version after it. The hot path: a store writes it with as little as it can."""

    async def acquire(self, key: ExecutionKey, owner: str, lease_until: float, now: float, *,
                      include_done: bool = False) -> int | None:
        """Take the lease of an unfinished execution that nobody holds (or whose lease expired, or
        that ``owner`` holds already); return the new version, or ``None`` if another holds it.
        ``include_done`` also takes a ``done`` one (to cancel it)."""

    async def release(self, key: ExecutionKey, owner: str) -> None:
        """Give back ``owner``'s lease of an execution without changing anything else."""

    async def abandon(self, key: ExecutionKey, owner: str) -> None:
        """``owner`` stops driving the execution without finishing its work: the lease keeps its
        expiry but no live owner renews it, so recovery takes the execution over when it expires."""

    async def fail_unreadable(self, key: ExecutionKey, reason: str, now: float) -> bool:
        """End an execution whose stored row cannot be read (corrupt JSON in its columns, content
        that does not load into a run) without reading it: ``failed``, no lease, out of the queue,
        ``updated_at`` and the retention clock at ``now``, the version bumped (a writer still holding
        the old one is fenced out). Its columns stay as they are, for whoever repairs or deletes it;
        ``reason`` is for the caller's log (no readable column holds it). Only an unfinished row
        changes; whether one did."""

    async def renew(self, owner: str, lease_until: float, keys: Sequence[ExecutionKey] | None = None) -> None:
        """Extend the leases ``owner`` holds to ``lease_until``: those of ``keys`` only (the
        executions it is driving; one statement however many), or every one (``None``)."""

    async def orphans(self, now: float, limit: int, workflow_ids: Collection[str] | None = None, *,
                      definitions: Collection[str] | None = None) -> list[ExecutionKey]:
        """Unfinished executions whose owner's lease expired; with ``workflow_ids``, only those of
        these workflows (an engine takes over only workflows it has), and with ``definitions``, only
        those whose stored definition hash is one of them (or who have none stored)."""

    async def list_rows(self, query: ListQuery) -> tuple[list[ExecutionRow], int]:
        """Rows matching ``query`` and the total count before paging."""

    async def finish_children(self, keys: Sequence[ExecutionKey], retention_time: float | None, now: float) -> None:
        """A parent finished: its nested executions are deleted with it (``retention_time=None``) or
        kept as long as it is."""

    async def put_definition(self, definition_hash: str, workflow_id: str, template: str, now: float) -> None:
        """Store a definition template under its hash (kept as it is if already there)."""

    async def get_definition(self, definition_hash: str) -> str | None:
        """The template stored under ``definition_hash``, or ``None``."""

    async def clear(self) -> None:
        """Delete every execution, step row and timer (for test isolation)."""

    async def delete_expired(self, now: float) -> int:
        """Delete finished executions whose retention ran out; return how many."""

    async def add_timer(self, timer: TimerRow, *, replace: bool = True) -> None:
        """Insert a timer; an existing one with its id is replaced, or kept when ``replace=False``."""

    async def due_timers(self, now: float, owner: str, limit: int, claim_for: float,
                         workflow_ids: Collection[str] | None = None, *,
                         definitions: Collection[str] | None = None) -> list[TimerRow]:
        """Claim up to ``limit`` due timers for ``claim_for`` seconds and return them, in due order;
        with ``workflow_ids``, only timers of these workflows, and with ``definitions``, only timers
        of executions whose stored definition hash is one of them (or who have none stored;
        schedules, which belong to no execution, are not filtered by it)."""

    async def move_timer(self, timer_id: str, owner: str, claimed_due: float, to: TimerRow | None) -> bool:
        """Move the timer this engine claimed (``owner``, due at ``claimed_due``) on to ``to`` (its new due
        time and data, unclaimed), or delete it if ``to`` is ``None``; ``False`` (nothing written) if
        the timer is no longer that claim: another engine fired it after this one's claim ran out."""

    async def delete_timer(self, timer_id: str) -> None:
        """Remove a timer (fired or no longer needed)."""

    async def delete_timers(self, key: ExecutionKey, kind: str | None = None) -> None:
        """Remove the timers of an execution (of one kind)."""

    async def next_due(self) -> float | None:
        """The earliest due time of any timer."""

    async def enqueue(self, row: ExecutionRow, priority: int) -> None:
        """Insert a queued execution (``row``: ``not_started``, no lease; queued at ``row.created_at``)
        for any engine to claim. ``conflict`` as :meth:`insert`. PostgreSQL also notifies
        :data:`QUEUE_CHANNEL` in the same transaction, so listening engines wake when it commits."""

    async def claim_queued(self, owner: str, lease_until: float, limit: int, workflow_ids: Collection[str], *,
                           definitions: Collection[str] | None = None,
                           limits: Mapping[str, int] | None = None) -> list[Claimed]:
        """Claim up to ``limit`` queued executions of ``workflow_ids`` (and, with ``definitions``, whose
        stored definition hash is one of them) for ``owner`` (their lease until ``lease_until``; they
        leave the queue), highest priority first, then oldest queued. Engines claiming at once never
        get the same execution. ``limits``: workflow id -> at most that many of its executions
        driven at once (leased and unfinished, by any engine); claims of such a workflow are
        serialized so that engines claiming at once do not exceed it together."""

    async def requeue_abandoned(self, owner: str, now: float) -> int:
        """Put back in the queue (queued at ``now``, no lease) the unfinished executions ``owner``
        abandoned (stopped driving half-way), so that another engine claims them at once instead of
        after their lease expires; return how many. PostgreSQL notifies :data:`QUEUE_CHANNEL`."""

    async def heartbeat(self, worker: WorkerRow) -> None:
        """Insert or refresh ``worker``'s row (its heartbeat time, definitions and concurrency; a
        restarted id is no longer stopped)."""

    async def worker_stopped(self, worker_id: str, now: float) -> None:
        """Mark ``worker_id`` stopped at ``now``."""

    async def workers(self) -> list[WorkerRow]:
        """Every worker row, most recent heartbeat first."""

    async def owned_counts(self) -> dict[str, int]:
        """Lease owner -> how many unfinished executions it holds the lease of."""

    async def delete_workers(self, before: float) -> int:
        """Delete the rows of workers whose last heartbeat is older than ``before``; how many."""

    notifies: bool
    """Whether processes sharing this store reach each other through :meth:`notify` and :meth:`watch`
    (PostgreSQL); if not, ``watch`` returns at once and ``notify`` sends nothing."""

    async def watch(self, channels: Mapping[str, Callable[[str], None]], on_listen: Callable[[], None],
                    on_lost: Callable[[], None] | None = None) -> None:
        """Call ``channels[channel](payload)`` for each notification sent on those channels (by any
        process, :data:`QUEUE_CHANNEL` included), until cancelled; ``on_listen()`` each time listening
        starts (again, after a lost connection: what was sent meanwhile is missed), ``on_lost()`` each
        time it stops (the connection was lost; until cancelled, it listens again). PostgreSQL:
        ``LISTEN`` on a connection of its own; a store without notifications returns at once, and
        engines poll."""

    async def notify(self, messages: Sequence[tuple[str, str]]) -> None:
        """Send each ``(channel, payload)`` in order, in one statement (PostgreSQL ``NOTIFY``: a
        payload is at most 7,999 bytes); nothing on a store without notifications."""
