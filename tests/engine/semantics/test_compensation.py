"""Rollback on every path: order, compensation inputs, parallel groups, failing compensations, ignored failures."""

from __future__ import annotations

import asyncio
from typing import Any

from stepwork import PermanentStepFailure, StepContext, StepResponse, create_step, parallelize
from tests.engine._util import (
    FAILED_COMPENSATED,
    FAILED_NO_COMPENSATION,
    FAILURE_IGNORED,
    NEVER_REACHED,
    SKIPPED,
    SKIPPED_ON_FAILURE,
    SUCCEEDED,
    SUCCEEDED_COMPENSATED,
)

from .conftest import ExecutionPath, invoke_outputs, states, step_records


def _recording_step(log: list[Any], name: str, *, is_async: bool = False, **options: Any) -> Any:
    """A step returning "out-{name}" whose invoke and compensation log (name, input, attempt)."""
    if is_async:
        async def invoke(inp: Any, ctx: StepContext) -> str:
            log.append(("invoke", name, ctx.attempt))
            await asyncio.sleep(0)
            return f"out-{name}"

        async def compensate(ci: Any, ctx: StepContext) -> None:
            await asyncio.sleep(0)
            log.append(("compensate", name, ci, ctx.attempt))
    else:
        def invoke(inp: Any, ctx: StepContext) -> str:
            log.append(("invoke", name, ctx.attempt))
            return f"out-{name}"

        def compensate(ci: Any, ctx: StepContext) -> None:
            log.append(("compensate", name, ci, ctx.attempt))
    return create_step({"name": name, **options}, invoke, compensate)


class S4Error(Exception):
    pass


async def test_compensation_runs_newest_first_after_retries(path: ExecutionPath, wf_name: str) -> None:
    """s4 fails 3 times (max_retries=2); s4, s3, s2, s1 are compensated newest first; s5 never runs."""
    log: list[Any] = []
    errors: list[BaseException] = []
    s1, s2, s3 = _recording_step(log, "s1"), _recording_step(log, "s2", is_async=True), _recording_step(log, "s3")

    def invoke4(inp: Any, ctx: StepContext) -> None:
        log.append(("invoke", "s4", ctx.attempt))
        errors.append(S4Error(f"s4 attempt {ctx.attempt}"))
        raise errors[-1]

    s4 = create_step({"name": "s4", "max_retries": 2}, invoke4,
                     lambda ci, ctx: log.append(("compensate", "s4", ci, ctx.attempt)))
    s5 = _recording_step(log, "s5")

    def composer(inp: Any) -> Any:
        c = s3(s2(s1(inp)))
        s4(c)
        return {"s5": s5(), "s1": "literal"}

    wf = path.workflow(wf_name, composer)
    result = await path.run(wf, {"x": 1}, throw_on_error=False)
    assert log == [
        ("invoke", "s1", 1), ("invoke", "s2", 1), ("invoke", "s3", 1),
        ("invoke", "s4", 1), ("invoke", "s4", 2), ("invoke", "s4", 3),
        ("compensate", "s4", None, 1),
        ("compensate", "s3", "out-s3", 1),
        ("compensate", "s2", "out-s2", 1),
        ("compensate", "s1", "out-s1", 1),
    ]
    assert result.transaction.state == "reverted"
    assert result.result == {"s5": None, "s1": "literal"}
    assert states(result) == {"s1": SUCCEEDED_COMPENSATED, "s2": SUCCEEDED_COMPENSATED, "s3": SUCCEEDED_COMPENSATED,
                              "s4": FAILED_COMPENSATED, "s5": NEVER_REACHED}
    records = step_records(result)
    assert {n: (r["attempts"], r["failures"]) for n, r in records.items()} == {
        "s1": (1, 0), "s2": (1, 0), "s3": (1, 0), "s4": (1, 0), "s5": (0, 0)}
    [failure] = result.errors
    assert (failure.action, failure.handler_type, failure.error["message"], failure.error["name"]) == (
        "s4", "invoke", "s4 attempt 3", "S4Error")
    assert failure.exception is errors[-1]
    assert result.acknowledgement.has_finished is True
    assert result.acknowledgement.has_failed is True
    assert result.transaction.execution["hasRevertedSteps"] is True

    log.clear()
    try:
        await path.run(wf, {"x": 1})
    except Exception as raised:  # noqa: BLE001 - compared below
        path.check_raised(raised, errors[-1])
    else:
        raise AssertionError("the run did not raise")
    assert log[-1] == ("compensate", "s1", "out-s1", 1)


async def test_compensation_receives_compensate_input_not_output(path: ExecutionPath, wf_name: str) -> None:
    """StepResponse(output, compensate_input): later steps read the output, the compensation gets the input."""
    seen: list[Any] = []
    make = create_step("make", lambda v: StepResponse({"id": 1, "secret": "s"}, {"undo": 1}),
                       lambda ci: seen.append(("undo make", ci)))
    plain = create_step("plain", lambda v: {"p": 2}, lambda ci: seen.append(("undo plain", ci)))
    nothing = create_step("nothing", lambda v: None, lambda ci: seen.append(("undo nothing", ci)))

    def use_it(inp: Any) -> None:
        seen.append(("use", inp))
        raise RuntimeError("use fails")

    use = create_step("use", use_it)

    def composer(inp: Any) -> None:
        made = make(inp)
        p = plain(made)
        nothing(p)
        use({"made": made, "plain": p})

    result = await path.run(path.workflow(wf_name, composer), throw_on_error=False)
    assert seen == [("use", {"made": {"id": 1, "secret": "s"}, "plain": {"p": 2}}), ("undo nothing", None),
                    ("undo plain", {"p": 2}), ("undo make", {"undo": 1})]
    assert result.transaction.state == "reverted"
    assert states(result)["use"] == FAILED_NO_COMPENSATION
    assert invoke_outputs(result) == {"make": {"id": 1, "secret": "s"}, "plain": {"p": 2}, "nothing": None}


async def test_permanent_failure_is_not_retried_and_passes_its_compensate_input(path: ExecutionPath,
                                                                                 wf_name: str) -> None:
    """return StepResponse.permanent_failure(msg, compensate_input): one attempt; the compensation gets the input."""
    attempts: list[int] = []
    compensated: list[Any] = []

    def charge(inp: Any, ctx: StepContext) -> Any:
        attempts.append(ctx.attempt)
        return StepResponse.permanent_failure("card declined", {"charged": 5})

    step = create_step({"name": "charge", "max_retries": 3}, charge, lambda ci: compensated.append(ci))
    result = await path.run(path.workflow(wf_name, lambda inp: step(inp)), throw_on_error=False)
    assert attempts == [1]
    assert compensated == [{"charged": 5}]
    assert result.transaction.state == "reverted"
    assert states(result) == {"charge": FAILED_COMPENSATED}
    [failure] = result.errors
    assert isinstance(failure.exception, PermanentStepFailure)
    assert (failure.error["message"], failure.error["name"]) == ("card declined", "PermanentStepFailure")


async def test_raised_permanent_failure_compensates_with_none(path: ExecutionPath, wf_name: str) -> None:
    """raise PermanentStepFailure from a coroutine step: no retry; its compensation gets None; run raises it."""
    attempts: list[int] = []
    compensated: list[Any] = []
    error = PermanentStepFailure("gone")

    async def invoke(inp: Any, ctx: StepContext) -> None:
        attempts.append(ctx.attempt)
        raise error

    step = create_step({"name": "p", "max_retries": 2}, invoke, lambda ci: compensated.append(ci))
    try:
        await path.run(path.workflow(wf_name, lambda inp: step(inp)))
    except Exception as raised:  # noqa: BLE001 - compared below
        path.check_raised(raised, error)
        assert isinstance(raised, PermanentStepFailure)
    else:
        raise AssertionError("the run did not raise")
    assert attempts == [1]
    assert compensated == [None]


async def test_skip_gives_none_downstream_and_is_never_compensated(path: ExecutionPath, wf_name: str) -> None:
    """StepResponse.skip(): skipped/ok, later steps read None, never compensated when a later step fails."""
    log: list[Any] = []
    skipper = create_step("skipper", lambda v: StepResponse.skip(), lambda ci: log.append("compensate skipper"))
    b = create_step("b", lambda v: {"got": v}, lambda ci: log.append(("compensate b", ci)))
    fail = create_step("fail", lambda v: StepResponse.permanent_failure("stop") if v["fail"] else "fine")

    def composer(inp: Any) -> Any:
        skipped = skipper(inp)
        got = b(skipped)
        return {"skipped": skipped, "b": got, "fail": fail(inp)}

    wf = path.workflow(wf_name, composer)
    done = await path.run(wf, {"fail": False})
    assert done.result == {"skipped": None, "b": {"got": None}, "fail": "fine"}
    assert done.transaction.state == "done"
    assert states(done) == {"skipper": SKIPPED, "b": SUCCEEDED, "fail": SUCCEEDED}
    assert done.transaction.execution["hasSkippedSteps"] is True
    assert "skipper" not in invoke_outputs(done)

    reverted = await path.run(wf, {"fail": True}, throw_on_error=False)
    assert log == [("compensate b", {"got": None})]
    assert reverted.transaction.state == "reverted"
    assert states(reverted) == {"skipper": SKIPPED, "b": SUCCEEDED_COMPENSATED, "fail": FAILED_NO_COMPENSATION}


async def test_parallel_failure_lets_siblings_finish_then_compensates_them_together(path: ExecutionPath,
                                                                                    wf_name: str) -> None:
    """parallelize(fail, slow_a, slow_b): the siblings finish, the three are compensated concurrently, then
    the step before the group."""
    log: list[Any] = []
    failed = asyncio.Event()
    entered = {"slow_a": asyncio.Event(), "slow_b": asyncio.Event()}

    def parent_comp(ci: Any) -> None:
        log.append(("compensate parent", ci))

    async def fast_fail(inp: Any) -> None:
        await asyncio.sleep(0)  # let the siblings start
        log.append("fast_fail raises")
        failed.set()
        raise RuntimeError("fast")

    def slow(name: str) -> Any:
        async def invoke(inp: Any) -> str:
            log.append(f"{name} started")
            await asyncio.wait_for(failed.wait(), 2.0)
            await asyncio.sleep(0)
            log.append(f"{name} done")
            return name.upper()

        async def compensate(ci: Any) -> None:
            log.append((f"compensate {name}", ci))
            entered[name].set()
            other = "slow_b" if name == "slow_a" else "slow_a"
            # Each compensation waits for the other one to have started: sequential compensation
            # never gets there, and the guard turns that deadlock into a failure.
            await asyncio.wait_for(entered[other].wait(), 1.0)
            log.append(f"{name} compensated")

        return create_step(name, invoke, compensate)

    parent = create_step("parent", lambda v: log.append("parent done") or "P", parent_comp)
    ff = create_step("fast_fail", fast_fail, lambda ci: log.append(("compensate fast_fail", ci)))
    slow_a, slow_b = slow("slow_a"), slow("slow_b")
    never = create_step("never", lambda v: log.append("never"))

    def composer(inp: Any) -> None:
        p = parent(inp)
        parallelize(ff(p), slow_a(p), slow_b(p))
        never(p)

    events = {"on_compensate_begin": lambda e: log.append("compensate begin")}
    result = await path.run(path.workflow(wf_name, composer), throw_on_error=False, events=events)

    assert log[0] == "parent done"
    begin = log.index("compensate begin")
    assert set(log[1:begin]) == {"slow_a started", "slow_b started", "fast_fail raises", "slow_a done", "slow_b done"}
    compensations = log[begin + 1:]
    assert compensations[-1] == ("compensate parent", "P")
    assert set(compensations[:-1]) == {("compensate fast_fail", None), ("compensate slow_a", "SLOW_A"),
                                       ("compensate slow_b", "SLOW_B"), "slow_a compensated", "slow_b compensated"}
    assert result.transaction.state == "reverted"
    assert states(result) == {"parent": SUCCEEDED_COMPENSATED, "fast_fail": FAILED_COMPENSATED,
                              "slow_a": SUCCEEDED_COMPENSATED, "slow_b": SUCCEEDED_COMPENSATED,
                              "never": NEVER_REACHED}
    assert invoke_outputs(result) == {"parent": "P", "slow_a": "SLOW_A", "slow_b": "SLOW_B"}
    assert [(e.action, e.error["message"]) for e in result.errors] == [("fast_fail", "fast")]


async def test_a_failing_compensation_ends_failed_and_the_rest_still_run(path: ExecutionPath, wf_name: str) -> None:
    """s2's compensation fails twice (max_retries=1, attempts restart at 1): state failed, s1 still compensated."""
    log: list[Any] = []
    s1, s3 = _recording_step(log, "s1"), _recording_step(log, "s3")

    def s2_comp(ci: Any, ctx: StepContext) -> None:
        log.append(("compensate", "s2", ci, ctx.attempt))
        raise OSError(f"cannot undo {ctx.attempt}")

    def s2_invoke(inp: Any, ctx: StepContext) -> str:
        log.append(("invoke", "s2", ctx.attempt))
        return "out-s2"

    s2 = create_step({"name": "s2", "max_retries": 1}, s2_invoke, s2_comp)
    boom = RuntimeError("s4 broke")

    def s4_invoke(inp: Any) -> None:
        raise boom

    s4 = create_step("s4", s4_invoke, lambda ci: log.append(("compensate", "s4", ci, 1)))

    def composer(inp: Any) -> None:
        s1(inp)
        s2(inp)
        s3(inp)
        s4(inp)

    wf = path.workflow(wf_name, composer)
    result = await path.run(wf, throw_on_error=False)
    assert [e for e in log if e[0] == "compensate"] == [
        ("compensate", "s4", None, 1), ("compensate", "s3", "out-s3", 1),
        ("compensate", "s2", "out-s2", 1), ("compensate", "s2", "out-s2", 2),
        ("compensate", "s1", "out-s1", 1)]
    assert result.transaction.state == "failed"
    assert result.acknowledgement.has_failed is True
    assert states(result) == {"s1": SUCCEEDED_COMPENSATED, "s2": ("done", "ok", "failed", "permanent_failure"),
                              "s3": SUCCEEDED_COMPENSATED, "s4": FAILED_COMPENSATED}
    assert [(e["action"], e["handler_type"], e["error"]["message"], e["error"]["name"])
            for e in result.transaction.context["errors"]] == [
        ("s4", "invoke", "s4 broke", "RuntimeError"), ("s2", "compensate", "cannot undo 2", "OSError")]
    assert [(e.action, e.handler_type) for e in result.errors] == [("s4", "invoke")]

    try:
        await path.run(wf)
    except Exception as raised:  # noqa: BLE001 - compared below
        path.check_raised(raised, boom)  # the first invoke error
    else:
        raise AssertionError("the run did not raise")


async def test_continue_on_permanent_failure(path: ExecutionPath, wf_name: str) -> None:
    """continue_on_permanent_failure: retried, recorded, later steps read None, the run ends done, no raise."""
    attempts: list[int] = []
    compensated: list[Any] = []

    def flop(inp: Any, ctx: StepContext) -> None:
        attempts.append(ctx.attempt)
        raise ValueError(f"flop {ctx.attempt}")

    a = create_step({"name": "a", "continue_on_permanent_failure": True, "max_retries": 1}, flop,
                    lambda ci: compensated.append(ci))
    b = create_step("b", lambda v: {"a was": v})
    result = await path.run(path.workflow(wf_name, lambda inp: b(a(inp))))  # throw_on_error: still no raise
    assert attempts == [1, 2]
    assert result.result == {"a was": None}
    assert result.transaction.state == "done"
    assert compensated == []
    assert states(result) == {"a": FAILURE_IGNORED, "b": SUCCEEDED}
    assert result.transaction.execution["hasFailedSteps"] is True
    assert [(e.action, e.handler_type, e.error["message"]) for e in result.errors] == [("a", "invoke", "flop 2")]
    assert result.acknowledgement.has_failed is False


async def test_skip_on_permanent_failure_skips_every_later_step(path: ExecutionPath, wf_name: str) -> None:
    """skip_on_permanent_failure=True: later steps end skipped_failure, none runs, the run ends done."""
    ran: list[str] = []
    step1 = create_step({"name": "step1", "skip_on_permanent_failure": True}, lambda v: 1 / 0,
                        lambda ci: ran.append("compensate step1"))
    later = [create_step(n, lambda v, n=n: ran.append(n)) for n in ("step2", "step3", "step4")]

    def composer(inp: Any) -> None:
        step1(inp)
        later[0](inp)
        parallelize(later[1](inp), later[2](inp))

    result = await path.run(path.workflow(wf_name, composer))
    assert ran == []
    assert result.transaction.state == "done"
    assert states(result) == {"step1": FAILURE_IGNORED, "step2": SKIPPED_ON_FAILURE,
                              "step3": SKIPPED_ON_FAILURE, "step4": SKIPPED_ON_FAILURE}
    assert result.transaction.execution["hasSkippedOnFailureSteps"] is True
    assert [(e.action, e.error["name"]) for e in result.errors] == [("step1", "ZeroDivisionError")]


async def test_skip_on_permanent_failure_until_a_named_step(path: ExecutionPath, wf_name: str) -> None:
    """skip_on_permanent_failure="step3": step2 is skipped, step3 and step4 run."""
    ran: list[Any] = []
    step1 = create_step({"name": "step1", "skip_on_permanent_failure": "step3"}, lambda v: 1 / 0)
    step2 = create_step("step2", lambda v: ran.append("step2"))
    step3 = create_step("step3", lambda v: ran.append("step3") or 3)
    step4 = create_step("step4", lambda v: ran.append(("step4", v)) or 4)

    def composer(inp: Any) -> Any:
        step1(inp)
        _, three = parallelize(step2(inp), step3(inp))
        return step4(three)

    result = await path.run(path.workflow(wf_name, composer))
    assert ran == ["step3", ("step4", 3)]
    assert result.result == 4
    assert result.transaction.state == "done"
    assert states(result) == {"step1": FAILURE_IGNORED, "step2": SKIPPED_ON_FAILURE, "step3": SUCCEEDED,
                              "step4": SUCCEEDED}


async def test_ignored_failures_are_compensated_when_a_later_step_fails(path: ExecutionPath, wf_name: str) -> None:
    """A later failure compensates the steps whose failure was ignored too, newest first, with None."""
    log: list[Any] = []
    a = create_step({"name": "a", "continue_on_permanent_failure": True}, lambda v: 1 / 0,
                    lambda ci: log.append(("compensate a", ci)))
    b = create_step("b", lambda v: "B", lambda ci: log.append(("compensate b", ci)))
    s1 = create_step({"name": "s1", "skip_on_permanent_failure": "s3"}, lambda v: 1 / 0,
                     lambda ci: log.append(("compensate s1", ci)))
    s2 = create_step("s2", lambda v: log.append("s2 ran"), lambda ci: log.append("compensate s2"))
    s3 = create_step("s3", lambda v: StepResponse.permanent_failure("s3 fails"),
                     lambda ci: log.append(("compensate s3", ci)))

    def composer(inp: Any) -> None:
        a(inp)
        b(inp)
        s1(inp)
        s2(inp)
        s3(inp)

    result = await path.run(path.workflow(wf_name, composer), throw_on_error=False)
    assert log == [("compensate s3", None), ("compensate s1", None), ("compensate b", "B"), ("compensate a", None)]
    assert result.transaction.state == "reverted"
    assert states(result) == {"a": FAILED_COMPENSATED, "b": SUCCEEDED_COMPENSATED, "s1": FAILED_COMPENSATED,
                              "s2": SKIPPED_ON_FAILURE, "s3": FAILED_COMPENSATED}
    assert [e.action for e in result.errors] == ["a", "s1", "s3"]
