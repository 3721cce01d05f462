"""R15/R16/R18, storage faults in one process: the engine's store fails at a rate ``p`` (database
errors as the stores raise them: a lost connection, "too many connections", a serialization failure;
and "ambiguous commits": the write is done, then the call raises). Many runs (steps, a retry, a
compensation) go through it; once the faults stop, every execution finishes, in its expected state,
with the right result, and each step's stored output is that of one of its invocations.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

import pytest

from stepwork import StepContext, StepworkError, WorkflowEngine, create_step, create_workflow

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

DB_ERROR = StepworkError.Types.DB_ERROR
ERRORS = ["connection to server lost", "sorry, too many clients already",
          "could not serialize access due to concurrent update"]
FAULTY = ("write", "write_steps", "renew", "acquire", "get", "claim_queued", "due_timers", "add_timer",
          "release", "orphans")
AMBIGUOUS = ("write", "write_steps", "add_timer")


class Faults:
    """Makes ``store``'s methods fail at rate ``p`` (on its instance: the engine's other parts keep it)."""

    def __init__(self, store: Any, p: float, seed: int, *, failed_insert: str | None = None,
                 ambiguous_insert: bool = False) -> None:
        self.p = p
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        for name in FAULTY:
            setattr(store, name, self._wrap(name, getattr(store, name)))
        if failed_insert is not None:  # the first insert of that transaction fails (written, or not)
            insert = store.insert

            async def failing(row: Any, *args: Any, **kwargs: Any) -> Any:
                if row.transaction_id == failed_insert and not self.counts["insert"]:
                    self.counts["insert"] += 1
                    if ambiguous_insert:
                        await insert(row, *args, **kwargs)
                    raise StepworkError(DB_ERROR, "connection to server lost")
                return await insert(row, *args, **kwargs)
            store.insert = failing

    def _wrap(self, name: str, method: Any) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.p and self.rng.random() < self.p:
                if name in AMBIGUOUS and self.rng.random() < 0.5:
                    await method(*args, **kwargs)
                    self.counts[f"{name}:ambiguous"] += 1
                    raise StepworkError(DB_ERROR, "connection to server lost (after the commit)")
                self.counts[name] += 1
                raise StepworkError(DB_ERROR, self.rng.choice(ERRORS))
            return await method(*args, **kwargs)
        return call


@pytest.mark.parametrize(("backend", "failed_insert"), [
    ("sqlite", None), ("postgres", None),
    pytest.param("sqlite", "ok-3", id="sqlite-failed-insert"),
    pytest.param("sqlite", "~ok-5", id="sqlite-ambiguous-insert"),
])
async def test_runs_under_storage_faults_finish_once_the_faults_stop(
        backend: str, failed_insert: str | None, tmp_path: Any, wf_name: str,
        request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}" if backend == "sqlite" else request.getfixturevalue("scale_out_url")
    calls: Counter[tuple[str, str, str]] = Counter()

    def step(name: str, fail_first: int = 0, fail: bool = False) -> Any:
        async def invoke(value: Any, ctx: StepContext) -> Any:
            calls[(ctx.transaction_id, name, "invoke")] += 1
            await asyncio.sleep(0.005)
            if fail:
                raise RuntimeError("fails for good")
            if ctx.attempt <= fail_first:
                raise ConnectionError("try again")
            return {"n": value["n"] + 1}

        def compensate(value: Any, ctx: StepContext) -> None:
            calls[(ctx.transaction_id, name, "compensate")] += 1
        return create_step({"name": name, "max_retries": 2, "retry_interval": 0.05} if fail_first else name,
                           invoke, compensate)
    a, b, c = step("a"), step("b", fail_first=1), step("c")
    ok = create_workflow({"name": wf_name, "retention_time": 600}, lambda inp: c(b(a(inp))))
    x, y = step("x"), step("y", fail=True)
    bad = create_workflow({"name": wf_name + "-bad", "retention_time": 600}, lambda inp: y(x(inp)))
    runs = [(ok, f"ok-{i}") for i in range(16)] + [(bad, f"bad-{i}") for i in range(4)]
    async with WorkflowEngine(url, poll_interval=0.05, lease_ttl=1.0, concurrency=4) as engine:
        ambiguous = failed_insert is not None and failed_insert.startswith("~")
        failed_insert = failed_insert.lstrip("~") if failed_insert else None
        faults = Faults(engine.store, 0.2, seed=12, failed_insert=failed_insert, ambiguous_insert=ambiguous)

        async def one(wf: Any, tid: str) -> None:
            for _ in range(100):
                try:
                    result = await engine.run(wf, {"n": 0}, transaction_id=tid, throw_on_error=False)
                    outcomes[tid] = (str(result.transaction.state), repr(result.errors)[:300])
                    return
                except StepworkError as exc:
                    outcomes[tid] = ("raised", f"{exc.type}: {exc.message}")
                    if exc.type == DB_ERROR and "is kept and continues" not in exc.message:
                        await asyncio.sleep(0.02)
                        continue  # maybe never stored: the same id starts it again or resumes it
                    return  # stored: the engine goes on with it (recovery, timers)
                    # (a conflict: another call drives it)
        outcomes: dict[str, tuple[str, str]] = {}
        await asyncio.gather(*[one(wf, tid) for wf, tid in runs])
        faults.p = 0.0  # the faults stop: everything must finish
        wait = 20
        deadline = time.monotonic() + wait
        while True:
            rows = await engine.list_workflow_executions({"workflow_id": [wf_name, wf_name + "-bad"]})
            states = {r.transaction_id: (str(r.state), r) for r in rows}
            if len(states) == len(runs) and all(s in ("done", "reverted", "failed") for s, _ in states.values()):
                break
            assert time.monotonic() < deadline, (
                f"not finished {wait} s after the faults stopped: "
                f"{ {t: s for t, (s, _) in states.items() if s not in ('done', 'reverted')} }, "
                f"missing {[(t, outcomes.get(t)) for t in sorted({t for _, t in runs} - set(states))]}; "
                f"faults {dict(faults.counts)}")
            await asyncio.sleep(0.1)
    print("faults injected:", dict(faults.counts))
    if failed_insert is not None:
        # (told "kept" only when the insert did commit: then recovery finished it, no retry needed)
        assert faults.counts["insert"] == 1, faults.counts
    assert sum(faults.counts.values()) >= 5, faults.counts
    assert len(rows) == len(runs), f"{len(rows)} executions for {len(runs)} runs"
    for _wf, tid in runs:
        state, row = states[tid]
        if tid.startswith("ok"):
            assert state == "done", (tid, state)
            assert row.context["data"]["invoke"]["c"] == {"n": 3}, (tid, row.context)
            # a completed step runs again only if a fault hit its checkpoint (same idempotency key)
            assert calls[(tid, "a", "invoke")] <= 4, (tid, calls)
        else:
            assert state == "reverted", (tid, state)
            assert calls[(tid, "x", "compensate")] >= 1, (tid, calls)
