"""One semantic suite, five execution paths.

The fixture ``path`` runs the same workflows

- ``memory``: ``await wf.run(...)``, no engine;
- ``sqlite`` / ``postgres``: through a started ``WorkflowEngine``, the workflow stored;
- ``sqlite-resumed`` / ``postgres-resumed``: stored, stopped at a first ``async`` step ("gate") on
  engine A, A stopped, and completed with ``set_step_success`` from a fresh engine B on the same
  database: B runs every step of the test's composer.

Every workflow built with ``path.workflow`` begins with the step ``gate`` (a passthrough step on the
paths that do not resume), whose output is the composer's input, so composers are path-independent.
Helpers below read records without the gate.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import pytest

from stepwork import StepworkError, Workflow, WorkflowEngine, WorkflowResult, create_step, create_workflow
from tests.conftest import BACKENDS

GATE = "gate"

PATHS = ["memory", "sqlite", "sqlite-resumed"]
if "postgres" in BACKENDS:
    PATHS += ["postgres", "postgres-resumed"]
RESUMED = ("sqlite-resumed", "postgres-resumed")

_passthrough_gate = create_step(GATE, lambda value: value)
# A step created with "async" whose invoke returns a plain value (not a StepResponse) waits.
_async_gate = create_step({"name": GATE, "async": True}, lambda value: None)
_counter = itertools.count()


class ExecutionPath:
    """One execution path of the suite (see the module docstring)."""

    def __init__(self, name: str, url: str | None, request: pytest.FixtureRequest) -> None:
        self.name = name
        self._request = request
        self.url = url
        self.stored = name != "memory"
        self.resumed = name.endswith("-resumed")
        self.engine: WorkflowEngine | None = None  # the engine the next run starts on (started at the first)
        self.clock: Any = None  # set before the first run: the engines get it, and poll every 0.02 s
        self._engines: list[WorkflowEngine] = []

    # -- building -------------------------------------------------------------------------------

    def workflow(self, name: str, composer: Callable[[Any], Any], *,
                 before_gate: Callable[[Any], Any] | None = None, **options: Any) -> Workflow[Any, Any]:
        """``create_workflow({"name": name, **options}, ...)``: ``before_gate(input)`` (if given), the gate on
        the input, then ``composer(gate output)``; stored (``store``, ``retention_time``) on engine paths.

        Steps that ``before_gate`` adds run on engine A on the resumed paths; the composer's on engine B.
        """
        gate = _async_gate if self.resumed else _passthrough_gate

        def wrapped(inp: Any) -> Any:
            if before_gate is not None:
                before_gate(inp)
            return composer(gate(inp))

        config: dict[str, Any] = {"name": name, **options}
        if self.stored:
            config.setdefault("store", True)
            config.setdefault("retention_time", 3600)
        return create_workflow(config, wrapped)

    # -- running --------------------------------------------------------------------------------

    async def _new_engine(self) -> WorkflowEngine:
        assert self.url is not None
        engine = (WorkflowEngine(self.url) if self.clock is None
                  else WorkflowEngine(self.url, clock=self.clock, poll_interval=0.02))
        await engine.start()
        self._engines.append(engine)
        return engine

    async def close(self) -> None:
        for engine in self._engines:
            await engine.stop()

    async def run(self, wf: Workflow[Any, Any], input: Any = None, *, throw_on_error: bool = True,
                  transaction_id: str | None = None, context: Mapping[str, Any] | None = None,
                  events: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None) -> WorkflowResult[Any]:
        """Run ``wf`` on this path; the result of the whole run (after the resume on resumed paths)."""
        if not self.stored:
            return await wf.run(input, throw_on_error=throw_on_error, transaction_id=transaction_id,
                                context=context, events=events)
        if self.engine is None:
            self.engine = await self._new_engine()
        if not self.resumed:
            return await self.engine.run(wf, input, throw_on_error=throw_on_error,
                                         transaction_id=transaction_id, context=context, events=events)
        tid = transaction_id or f"tx-{next(_counter)}"
        first_events = None
        if events is not None:
            # The wait at the gate is the fixture's: its on_finish ("invoking") is not the run's.
            def forward(event_type: str, handler: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
                def call(event: dict[str, Any]) -> Any:
                    if event_type == "on_finish" and event.get("state") == "invoking":
                        return None
                    return handler(event)
                return call
            first_events = {t: forward(t, h) for t, h in events.items()}
        a = self.engine
        first = await a.run(wf, input, transaction_id=tid, context=context, throw_on_error=throw_on_error,
                            events=first_events)
        assert first.transaction.state == "invoking", first.transaction.state
        [gate_record] = [rec for rid, rec in first.transaction.execution["steps"].items()
                         if rid != "_root" and rec["definition"]["action"] == GATE]
        assert gate_record["invoke"] == {"state": "invoking", "status": "waiting_response"}
        await a.stop()
        b = await self._new_engine()
        self.engine = b
        if events is not None:
            async def dispatch(event: dict[str, Any]) -> None:
                handler = events.get(event["event_type"])
                if handler is not None:
                    out = handler(event)
                    if hasattr(out, "__await__"):
                        await out
            await b.subscribe(wf.name, dispatch, transaction_id=tid)
        return await b.set_step_success(f"{wf.name}:{tid}:{GATE}:invoke", input, throw_on_error=throw_on_error)

    # -- what differs by contract ---------------------------------------------------------------

    def check_raised(self, raised: BaseException, original: BaseException, *, before_gate: bool = False) -> None:
        """The error a run raised stands for ``original``, which a step raised.

        The contract: it is the original object when the engine that ran the step finishes the run,
        and a ``StepworkError`` with the original's class name (``.name``) and message after a resume
        in another engine (the class is not stored). Here only steps added by ``before_gate`` run in
        another engine (A, on the resumed paths); the composer's steps run where the run finishes.
        """
        assert str(raised) == str(original)
        assert getattr(raised, "name", type(raised).__name__) == type(original).__name__
        if before_gate and self.resumed:
            assert isinstance(raised, StepworkError), repr(raised)
        else:
            assert raised is original, f"{raised!r} is not the step's own exception object"

    def xfail_on(self, names: Collection[str], reason: str) -> None:
        """Mark this test a strict expected failure on the paths ``names`` (a path difference, i.e. a bug)."""
        if self.name in names:
            self._request.node.add_marker(pytest.mark.xfail(strict=True, reason=f"path difference: {reason}"))

    def __repr__(self) -> str:
        return f"<path {self.name}>"


@pytest.fixture(params=PATHS)
async def path(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ExecutionPath]:
    """The execution path under test (the test runs once per path)."""
    name = request.param
    url: str | None = None
    if name.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'x.db'}"
    elif name.startswith("postgres"):
        url = str(request.getfixturevalue("pg_database_url"))
    p = ExecutionPath(name, url, request)
    try:
        yield p
    finally:
        await p.close()


# -- records without the gate -------------------------------------------------------------------

def step_records(result: WorkflowResult[Any]) -> dict[str, dict[str, Any]]:
    """The step records by step name, without ``_root`` and the gate."""
    steps = result.transaction.execution["steps"]
    out = {rec["definition"]["action"]: rec for rid, rec in steps.items() if rid != "_root"}
    out.pop(GATE, None)
    return out


def states(result: WorkflowResult[Any]) -> dict[str, tuple[str, str, str, str]]:
    """``{name: (invoke state, invoke status, compensate state, compensate status)}`` without the gate."""
    return {name: (r["invoke"]["state"], r["invoke"]["status"], r["compensate"]["state"],
                   r["compensate"]["status"]) for name, r in step_records(result).items()}


def invoke_outputs(result: WorkflowResult[Any]) -> dict[str, Any]:
    """``context["data"]["invoke"]`` without the gate."""
    data = dict(result.transaction.context["data"]["invoke"])
    data.pop(GATE, None)
    return data
