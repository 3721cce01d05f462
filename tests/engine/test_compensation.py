"""Compensation through in-memory runs: order, inputs, retries, parallel groups, failures (SPEC §4)."""

from __future__ import annotations

import asyncio

import pytest

from stepwork import StepResponse, create_step, create_workflow, parallelize
from tests.engine._util import (
    FAILED_COMPENSATED,
    FAILED_NO_COMPENSATION,
    NEVER_REACHED,
    SUCCEEDED_COMPENSATED,
    states,
    step_records,
)


def _recording_step(log, name, *, is_async=False, **options):
    """A step whose invoke returns "out-{name}" and whose compensation logs its input and attempt."""
    if is_async:
        async def invoke(inp, ctx):
            log.append(("invoke", name, ctx.attempt))
            await asyncio.sleep(0)
            return f"out-{name}"

        async def compensate(ci, ctx):
            await asyncio.sleep(0)
            log.append(("compensate", name, ci, ctx.attempt))
    else:
        def invoke(inp, ctx):
            log.append(("invoke", name, ctx.attempt))
            return f"out-{name}"

        def compensate(ci, ctx):
            log.append(("compensate", name, ci, ctx.attempt))
    return create_step({"name": name, **options}, invoke, compensate)


def _four_steps_the_last_failing(wf_name, log):
    s1 = _recording_step(log, "s1")
    s2 = _recording_step(log, "s2", is_async=True)
    s3 = _recording_step(log, "s3")

    def invoke4(inp, ctx):
        log.append(("invoke", "s4", ctx.attempt))
        raise ValueError(f"s4 attempt {ctx.attempt}")

    s4 = create_step({"name": "s4", "max_retries": 2}, invoke4,
                     lambda ci, ctx: log.append(("compensate", "s4", ci, ctx.attempt)))
    s5 = _recording_step(log, "s5")

    def composer(inp):
        a = s1(inp)
        b = s2(a)
        c = s3(b)
        s4(c)
        return s5()

    return create_workflow(wf_name, composer)


async def test_reverse_order_compensation_after_retries(wf_name):
    """s4 fails 3 times (max_retries=2), then s4, s3, s2, s1 are compensated newest first; state reverted."""
    log = []
    wf = _four_steps_the_last_failing(wf_name, log)
    result = await wf.run({"x": 1}, throw_on_error=False)
    assert log == [
        ("invoke", "s1", 1), ("invoke", "s2", 1), ("invoke", "s3", 1),
        ("invoke", "s4", 1), ("invoke", "s4", 2), ("invoke", "s4", 3),
        ("compensate", "s4", None, 1),        # the failing step itself, first, with None
        ("compensate", "s3", "out-s3", 1),
        ("compensate", "s2", "out-s2", 1),
        ("compensate", "s1", "out-s1", 1),
    ]
    assert result.transaction.state == "reverted"
    assert states(result) == {
        "s1": SUCCEEDED_COMPENSATED, "s2": SUCCEEDED_COMPENSATED, "s3": SUCCEEDED_COMPENSATED,
        "s4": FAILED_COMPENSATED, "s5": NEVER_REACHED,
    }
    records = step_records(result)
    # attempts and failures restart with the compensation (one successful attempt each)
    assert {n: (r["attempts"], r["failures"]) for n, r in records.items()} == {
        "s1": (1, 0), "s2": (1, 0), "s3": (1, 0), "s4": (1, 0), "s5": (0, 0)}
    assert [(e.action, e.handler_type, e.error["message"]) for e in result.errors] == [
        ("s4", "invoke", "s4 attempt 3")]
    assert result.result is None
    assert result.acknowledgement.has_failed is True
    assert result.transaction.execution["hasRevertedSteps"] is True


async def test_failed_run_raises_the_last_attempts_exception(wf_name):
    """With throw_on_error (default) a reverted run raises the step's own exception object."""
    log = []
    wf = _four_steps_the_last_failing(wf_name, log)
    with pytest.raises(ValueError, match="s4 attempt 3"):
        await wf.run({"x": 1})
    assert log[-1] == ("compensate", "s1", "out-s1", 1)


async def test_failing_step_without_compensation_is_reverted_idle(wf_name):
    """A failing step without a compensate function ends failed/permanent_failure, reverted/idle."""
    log = []
    first = _recording_step(log, "first")
    boom = create_step("boom", lambda: 1 / 0)
    wf = create_workflow(wf_name, lambda inp: (first(), boom()))
    result = await wf.run(throw_on_error=False)
    assert states(result) == {"first": SUCCEEDED_COMPENSATED, "boom": FAILED_NO_COMPENSATION}
    assert result.transaction.state == "reverted"
    assert isinstance(result.errors[0].exception, ZeroDivisionError)


async def test_compensation_receives_compensate_input_not_output(wf_name):
    """StepResponse(output, compensate_input): later steps get the output, the compensation the input."""
    seen = []
    make = create_step("make", lambda: StepResponse({"id": 1, "secret": "s"}, 1),
                       lambda ci: seen.append(ci))
    use = create_step("use", lambda inp: seen.append(("use", inp)) or 1 / 0)
    wf = create_workflow(wf_name, lambda inp: use(make()))
    result = await wf.run(throw_on_error=False)
    assert seen == [("use", {"id": 1, "secret": "s"}), 1]
    assert result.transaction.state == "reverted"


async def test_parallel_failure_waits_for_siblings_then_compensates_them_concurrently(wf_name):
    """parallelize(fast_fail, slow_a, slow_b): slow siblings finish, all three are compensated together, then parent."""
    log = []
    failed = asyncio.Event()
    entered = {"slow_a": asyncio.Event(), "slow_b": asyncio.Event()}

    async def parent_invoke(inp, ctx):
        log.append("parent done")
        return "P"

    async def parent_comp(ci, ctx):
        log.append(("compensate parent", ci))

    async def fast_fail(inp, ctx):
        await asyncio.sleep(0)  # let the siblings start
        log.append("fast_fail raises")
        failed.set()
        raise RuntimeError("fast")

    async def fast_fail_comp(ci, ctx):
        log.append(("compensate fast_fail", ci))

    def slow(name):
        async def invoke(inp, ctx):
            log.append(f"{name} started")
            await failed.wait()
            await asyncio.sleep(0)
            log.append(f"{name} done")
            return name.upper()

        async def compensate(ci, ctx):
            log.append((f"compensate {name}", ci))
            entered[name].set()
            other = "slow_b" if name == "slow_a" else "slow_a"
            # Handshake: each compensation waits for the other one to have started. Sequential
            # compensation would never get there; the guard turns that deadlock into a failure.
            async with asyncio.timeout(0.3):
                await entered[other].wait()
            log.append(f"{name} compensated")

        return create_step(name, invoke, compensate)

    parent = create_step("parent", parent_invoke, parent_comp)
    ff = create_step("fast_fail", fast_fail, fast_fail_comp)
    slow_a, slow_b = slow("slow_a"), slow("slow_b")

    def composer(inp):
        p = parent(inp)
        return parallelize(ff(p), slow_a(p), slow_b(p))

    events = {"on_compensate_begin": lambda e: log.append("compensate begin")}
    result = await create_workflow(wf_name, composer).run(throw_on_error=False, events=events)

    begin = log.index("compensate begin")
    assert {"slow_a done", "slow_b done", "fast_fail raises"} <= set(log[:begin])
    assert log[0] == "parent done"
    compensations = log[begin + 1:]
    assert compensations[-1] == ("compensate parent", "P")
    assert set(compensations[:-1]) == {("compensate fast_fail", None), ("compensate slow_a", "SLOW_A"),
                                       ("compensate slow_b", "SLOW_B"), "slow_a compensated",
                                       "slow_b compensated"}
    assert result.transaction.state == "reverted"
    assert states(result) == {
        "parent": SUCCEEDED_COMPENSATED, "fast_fail": FAILED_COMPENSATED,
        "slow_a": SUCCEEDED_COMPENSATED, "slow_b": SUCCEEDED_COMPENSATED,
    }
    assert result.transaction.context["data"]["invoke"] == {"parent": "P", "slow_a": "SLOW_A", "slow_b": "SLOW_B"}
    assert [e.action for e in result.errors] == ["fast_fail"]


async def test_compensation_is_retried_and_attempts_restart_at_one(wf_name):
    """max_retries applies to the compensation; ctx.attempt restarts at 1 after 3 invoke attempts."""
    log = []

    def flaky_invoke(inp, ctx):
        log.append(("invoke", ctx.attempt))
        if ctx.attempt < 3:
            raise RuntimeError("not yet")
        return "F"

    async def flaky_comp(ci, ctx):
        log.append(("compensate", ctx.attempt, ci))
        if ctx.attempt < 3:
            raise RuntimeError(f"comp attempt {ctx.attempt}")
        return {"undone": ci}

    flaky = create_step({"name": "flaky", "max_retries": 2}, flaky_invoke, flaky_comp)
    breaks = create_step("breaks", lambda: StepResponse.permanent_failure("stop"))
    result = await create_workflow(wf_name, lambda inp: (flaky(), breaks())).run(throw_on_error=False)
    assert log == [("invoke", 1), ("invoke", 2), ("invoke", 3),
                   ("compensate", 1, "F"), ("compensate", 2, "F"), ("compensate", 3, "F")]
    assert result.transaction.state == "reverted"
    assert states(result)["flaky"] == SUCCEEDED_COMPENSATED
    assert (step_records(result)["flaky"]["attempts"], step_records(result)["flaky"]["failures"]) == (3, 2)
    assert result.transaction.context["data"]["compensate"] == {"flaky": {"undone": "F"}}
    assert [e.handler_type for e in (result.errors)] == ["invoke"]
    assert [e["handler_type"] for e in result.transaction.context["errors"]] == ["invoke"]


async def test_a_compensation_failing_permanently_ends_failed_and_the_rest_still_run(wf_name):
    """s2's compensation fails twice (max_retries=1): state failed, s1 still compensated, error only in context."""
    log = []
    s1 = _recording_step(log, "s1")
    s3 = _recording_step(log, "s3")

    def s2_comp(ci, ctx):
        log.append(("compensate", "s2", ci, ctx.attempt))
        raise OSError(f"cannot undo {ctx.attempt}")

    s2 = create_step({"name": "s2", "max_retries": 1}, lambda: "out-s2", s2_comp)
    boom_error = RuntimeError("s4 broke")

    def s4_invoke():
        raise boom_error

    s4 = create_step("s4", s4_invoke, lambda ci: log.append(("compensate", "s4", ci, 1)))
    wf = create_workflow(wf_name, lambda inp: (s1(), s2(), s3(), s4()))
    result = await wf.run(throw_on_error=False)
    assert [entry for entry in log if entry[0] == "compensate"] == [
        ("compensate", "s4", None, 1),
        ("compensate", "s3", "out-s3", 1),
        ("compensate", "s2", "out-s2", 1),
        ("compensate", "s2", "out-s2", 2),
        ("compensate", "s1", "out-s1", 1),
    ]
    assert result.transaction.state == "failed"
    assert result.acknowledgement.has_finished is True
    assert result.acknowledgement.has_failed is True
    assert states(result) == {
        "s1": SUCCEEDED_COMPENSATED, "s2": ("done", "ok", "failed", "permanent_failure"),
        "s3": SUCCEEDED_COMPENSATED, "s4": FAILED_COMPENSATED,
    }
    context_errors = [(e["action"], e["handler_type"], e["error"]["message"])
                      for e in result.transaction.context["errors"]]
    assert context_errors == [("s4", "invoke", "s4 broke"), ("s2", "compensate", "cannot undo 2")]
    assert [(e.action, e.handler_type) for e in result.errors] == [("s4", "invoke")]

    log.clear()
    with pytest.raises(RuntimeError) as info:
        await wf.run()
    assert info.value is boom_error  # the first invoke error, as the original object


async def test_skipped_steps_are_not_compensated(wf_name):
    """A step that returned StepResponse.skip() is never compensated when a later step fails."""
    log = []
    skipper = create_step("skipper", lambda: StepResponse.skip(), lambda ci: log.append("compensate skipper"))
    after = create_step("after", lambda inp: log.append(("after got", inp)) or 1 / 0)
    result = await create_workflow(wf_name, lambda inp: after(skipper())).run(throw_on_error=False)
    assert log == [("after got", None)]
    assert states(result)["skipper"] == ("skipped", "ok", "dormant", "idle")
    assert result.transaction.state == "reverted"
