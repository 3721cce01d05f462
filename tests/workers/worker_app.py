"""One worker process of the multi-process harness:

    python -m tests.workers.worker_app --database-url URL --dir DIR --index N [options]

It starts a ``WorkflowEngine`` on the shared database (short ``lease_ttl`` and ``poll_interval``),
registers the harness workflows (:mod:`tests.workers.workflows`) and, with ``--tick-interval``, the
scheduled one, journals ``ready``, waits for ``DIR/go``, then:

- starts its share of runs (``--runs slow=3,fail=1,...``; transaction ids ``{prefix}-{kind}-{i}``),
  each driven by this process until it ends or its owner changes (a run whose start met a database
  error before its execution was stored is started again);
- answers the async steps that *other* processes invoked (found in their journals) with
  ``set_step_success`` by idempotency key;
- journals every ``on_finish`` its engine sees;

and keeps running (recovering, firing timers and ticks) until SIGTERM, when it stops its engine.
Logs go to ``DIR/worker-{index}-{pid}.log``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

from stepwork import StepworkError, WorkflowEngine
from tests.workers import workflows
from tests.workers.journal import Journal, parse_runs, transaction_ids

ASYNC_STEP = "async-2"
_RETRY_REFUSED_FOR = 120.0  # seconds a completer keeps trying a refused completion


class Worker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dir = Path(args.dir)
        self.journal = Journal(self.dir, args.index)
        workflows.JOURNAL = self.journal
        workflows.SCALE = args.scale
        if args.tick_interval > 0:
            workflows.register_tick(args.tick_interval, args.tick_count)
        self.engine = WorkflowEngine(args.database_url, lease_ttl=args.lease_ttl, poll_interval=args.poll_interval,
                                     cleanup_interval=3600, concurrency=args.engine_concurrency)
        if args.freeze_before_tick_move:
            self.fault_at_tick_move(signal.SIGSTOP)
        elif args.kill_after_tick_move:
            self.fault_at_tick_move(signal.SIGKILL)
        self.offsets: dict[Path, int] = {}
        self.requests: dict[str, float] = {}  # async step keys other processes invoked -> journal time
        self.seen_at: dict[str, float] = {}  # -> when this process first tried to answer (loop time)
        self.answered: set[str] = set()
        self.answering: set[str] = set()
        self.last_outcome: dict[str, str] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    # -- starting runs ----------------------------------------------------------------------------

    async def start_runs(self) -> None:
        limit = asyncio.Semaphore(self.args.concurrency or 1_000_000)

        async def one(workflow: str, tid: str) -> None:
            async with limit:
                await self.start_one(workflow, tid)
        await asyncio.gather(*[one(w, t) for w, t in transaction_ids(self.args.prefix, parse_runs(self.args.runs))])
        self.journal.write("started-all")

    async def start_one(self, workflow: str, tid: str) -> None:
        for _ in range(200):
            try:
                if self.args.queue:
                    await self.engine.run(workflow, {"tid": tid}, transaction_id=tid, queue=True,
                                          priority=self.args.priority)
                    self.journal.write("queued", wf=workflow, tid=tid)
                    return
                result = await self.engine.run(workflow, {"tid": tid}, transaction_id=tid, throw_on_error=False)
            except StepworkError as exc:
                self.journal.write("run", wf=workflow, tid=tid, outcome=f"{exc.type}: {exc.message}")
                if exc.type == StepworkError.Types.DB_ERROR and "is kept and continues" not in exc.message:
                    await asyncio.sleep(0.5)  # maybe never stored: start it again (the same id resumes it)
                    continue
                return
            except Exception as exc:
                self.journal.write("run", wf=workflow, tid=tid, outcome=f"{type(exc).__name__}: {exc}")
                return
            state = result.transaction.state
            self.journal.write("run", wf=workflow, tid=tid, outcome=str(getattr(state, "value", state)))
            return

    # -- answering async steps of other processes -------------------------------------------------

    def _read_requests(self) -> None:
        import json

        for path in self.dir.glob("journal-*.jsonl"):
            if path == self.journal.path:
                continue
            with open(path, "rb") as f:
                f.seek(self.offsets.get(path, 0))
                data = f.read()
            end = data.rfind(b"\n") + 1  # a line being written is read next time
            self.offsets[path] = self.offsets.get(path, 0) + end
            for raw in data[:end].splitlines():
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if (line.get("event") == "start" and line.get("step") == ASYNC_STEP
                        and line.get("action") == "invoke"):
                    self.requests.setdefault(line["key"], line["t"])

    async def answer_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._read_requests()
            now = loop.time()
            for key in list(self.requests):
                if key in self.answered or key in self.answering:
                    continue
                if now - self.seen_at.setdefault(key, now) > _RETRY_REFUSED_FOR:
                    self.answered.add(key)
                    continue
                self.answering.add(key)
                self.spawn(self.answer(key))
            await asyncio.sleep(0.2)

    async def answer(self, key: str) -> None:
        try:
            await self.engine.set_step_success(key, {"completed_by": os.getpid()}, throw_on_error=False)
            outcome, done = "ok", True
        except StepworkError as exc:
            outcome = f"{exc.type}: {exc.message}"
            # Done when the answer was stored (the error says the execution continues), or someone
            # else's was (the step is past waiting). Not done: the step is not waiting yet (its
            # invoker died mid-invoke and recovery invokes it again), or the database is away.
            refused = "Cannot set step success when status is" in exc.message and not any(
                exc.message.endswith(f"status is {s}") for s in ("idle", "invoking", "not_started"))
            done = ("already finished" in exc.message or "is kept and continues" in exc.message or refused
                    or exc.type == StepworkError.Types.NOT_FOUND)
        except Exception as exc:
            outcome, done = f"{type(exc).__name__}: {exc}", False
        if outcome != self.last_outcome.get(key):
            self.journal.write("complete", key=key, outcome=outcome)
            self.last_outcome[key] = outcome
        if done:
            self.answered.add(key)
        else:
            await asyncio.sleep(0.3)
        self.answering.discard(key)

    # -- fault injection -------------------------------------------------------------------------

    def fault_at_tick_move(self, sig: int) -> None:
        """The first time this engine fires a schedule tick: with SIGSTOP, stop this process right
        before the schedule's timer is moved on (the tick's timer claimed, nothing else written yet),
        journaled as ``freezing``; with SIGKILL, kill it right after the move, before the tick's run
        (journaled as ``dying``). The line's ``tid`` is the tick's transaction id."""
        from stepwork.engine.scheduler import tick_transaction_id

        event = "freezing" if sig == signal.SIGSTOP else "dying"
        store: Any = self.engine.store
        due_timers, move_timer = store.due_timers, store.move_timer
        claimed: dict[str, float] = {}
        frozen = False

        async def claiming(*args: Any, **kwargs: Any) -> Any:
            timers = await due_timers(*args, **kwargs)
            claimed.update({t.id: t.due_at for t in timers if t.kind == "schedule"})
            return timers

        async def moving(timer_id: str, owner: str, claimed_due: float, to: Any) -> bool:
            nonlocal frozen
            hit = not frozen and timer_id in claimed
            if hit:
                frozen = True
                workflow_id = timer_id.removeprefix("schedule:")
                self.journal.write(event, wf=workflow_id, tid=tick_transaction_id(workflow_id, claimed[timer_id]))
                if sig == signal.SIGSTOP:
                    os.kill(os.getpid(), sig)
            moved: bool = await move_timer(timer_id, owner, claimed_due, to)
            if hit and sig == signal.SIGKILL:
                os.kill(os.getpid(), sig)
            return moved
        store.due_timers, store.move_timer = claiming, moving

    # -- the rest ---------------------------------------------------------------------------------

    def spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("event_type") == "on_finish":
            self.journal.write("finish", wf=event.get("workflow_id"), tid=event.get("transaction_id"),
                               state=str(event.get("state")))

    async def start_engine(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:
            try:
                await self.engine.start()
                return
            except StepworkError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def main(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await self.start_engine()
        # The runs this process drives only: on PostgreSQL a workflow subscriber also gets other
        # processes' events (docs/workers.md, "Events from every worker"), which the journal must not count.
        self.engine.subscriptions.add_global(self.on_event, "harness-journal")
        self.journal.write("ready")
        go = self.dir / "go"
        while not go.exists() and not stop.is_set():
            await asyncio.sleep(0.01)
        self.spawn(self.start_runs())
        self.spawn(self.answer_loop())
        await stop.wait()
        self.journal.write("stopping")
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.engine.stop(grace=self.args.grace)
        self.journal.write("stopped")


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.workers.worker_app")
    p.add_argument("--database-url", required=True)
    p.add_argument("--dir", required=True, help="where journals, logs and the go file are")
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--prefix", default=None, help="transaction id prefix (default: w{index})")
    p.add_argument("--runs", default="", help="runs this worker starts, e.g. slow=3,fail=1,retry=1,async=1")
    p.add_argument("--concurrency", type=int, default=0, help="runs in flight at once (0: all)")
    p.add_argument("--queue", action="store_true",
                   help="queue this worker's runs (engine.run(..., queue=True)) instead of driving them")
    p.add_argument("--priority", type=int, default=0, help="the priority of the runs queued with --queue")
    p.add_argument("--engine-concurrency", type=int, default=10,
                   help="WorkflowEngine(concurrency=N): queued runs claimed at once (0: claim none)")
    p.add_argument("--local-finish", action="store_true",
                   help="journal the on_finish events of the runs this process drives only (an engine-wide "
                        "subscriber): on PostgreSQL a workflow subscriber also gets other processes' events")
    p.add_argument("--grace", type=float, default=0.0, help="on SIGTERM: engine.stop(grace=SECONDS)")
    p.add_argument("--lease-ttl", type=float, default=2.0)
    p.add_argument("--poll-interval", type=float, default=0.2)
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every step's duration")
    p.add_argument("--tick-interval", type=float, default=0.0, help="register harness-tick (seconds; 0: not)")
    p.add_argument("--tick-count", type=int, default=5)
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--freeze-before-tick-move", action="store_true",
                   help="SIGSTOP this process right before it moves the schedule's timer on, the first time")
    p.add_argument("--kill-after-tick-move", action="store_true",
                   help="SIGKILL this process right after it moved the schedule's timer on, the first time")
    args = p.parse_args(argv)
    if args.prefix is None:
        args.prefix = f"w{args.index}"
    return args


def run(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    logging.basicConfig(filename=Path(args.dir) / f"worker-{args.index}-{os.getpid()}.log", level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(Worker(args).main())


if __name__ == "__main__":
    run()
