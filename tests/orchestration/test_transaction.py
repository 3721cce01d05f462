"""The Transaction state machine driven by hand: retries, failure options, compensation order."""

from __future__ import annotations

from stepwork import StepState, StepStatus, TransactionState
from stepwork.errors import PermanentStepFailure, StepTimeoutError, TransactionTimeoutError
from stepwork.orchestration.transaction import FailureOutcome, Transaction
from tests.orchestration._plans import fail, index, make_plan, make_txn, names, opts, run_stage_ok, succeed

S = StepState
T = StepStatus


def record(txn: Transaction, name: str) -> tuple[str, str, str, str]:
    """(invoke state, invoke status, compensate state, compensate status) of step ``name``."""
    r = txn.steps[index(txn, name)]
    return (r.invoke_state.value, r.invoke_status.value, r.comp_state.value, r.comp_status.value)


def test_fresh_transaction(wf_name):
    """A new transaction is not_started; every step is not_started/idle, dormant/idle."""
    txn = Transaction(make_plan(wf_name, "a", ("b", "c")), "tx", "run", {"p": 1})
    assert txn.state is TransactionState.NOT_STARTED
    assert not txn.is_finished
    assert [record(txn, n) for n in "abc"] == [("not_started", "idle", "dormant", "idle")] * 3
    txn.begin(5.0)
    assert txn.state is TransactionState.INVOKING
    assert txn.started_at == 5.0


def test_stages_come_in_order_then_none(wf_name):
    """next_stage hands out each stage once, in order, then None."""
    txn = make_txn(make_plan(wf_name, "a", ("b", "c"), "d"))
    assert [names(txn, txn.next_stage()) for _ in range(3)] == [["a"], ["b", "c"], ["d"]]
    assert txn.next_stage() is None


def test_successful_run_records_outputs_and_ends_done(wf_name):
    """Successful attempts are done/ok, keep output and compensate input, and the run ends done."""
    txn = make_txn(make_plan(wf_name, "a", opts("b", save_response=False)))
    txn.next_stage()
    assert txn.start_invoke(0, 10.0) == 1
    assert record(txn, "a") == ("invoking", "waiting_response", "dormant", "idle")
    txn.invoke_succeeded(0, "out-a", "undo-a")
    txn.next_stage()
    succeed(txn, "b", "out-b", "undo-b")
    assert record(txn, "a") == ("done", "ok", "dormant", "idle")
    assert txn.outputs == ["out-a", None]  # save_response=False keeps no output
    assert [r.comp_input for r in txn.steps] == ["undo-a", "undo-b"]
    assert txn.steps[0].started_at == 10.0
    assert txn.finish_invoking() is TransactionState.DONE
    assert txn.errors == []


def test_failures_up_to_max_retries_are_retried(wf_name):
    """With max_retries=2 the 1st and 2nd failures say RETRY (temp_failure), the 3rd is permanent."""
    txn = make_txn(make_plan(wf_name, opts("a", max_retries=2)))
    txn.next_stage()
    assert fail(txn, "a", ValueError("1")) is FailureOutcome.RETRY
    assert record(txn, "a") == ("invoking", "temp_failure", "dormant", "idle")
    assert fail(txn, "a", ValueError("2")) is FailureOutcome.RETRY
    assert txn.errors == []  # temporary failures are not recorded as errors
    assert fail(txn, "a", ValueError("3")) is FailureOutcome.COMPENSATE
    rec = txn.steps[0]
    assert (rec.attempts, rec.failures) == (3, 3)
    assert record(txn, "a") == ("failed", "permanent_failure", "dormant", "idle")
    assert txn.failing is True
    assert [(e.action, e.handler_type, e.error["message"]) for e in txn.errors] == [("a", "invoke", "3")]


def test_no_retries_by_default(wf_name):
    """max_retries defaults to 0: the first failure is permanent."""
    txn = make_txn(make_plan(wf_name, "a"))
    txn.next_stage()
    assert fail(txn, "a") is FailureOutcome.COMPENSATE
    assert record(txn, "a") == ("failed", "permanent_failure", "dormant", "idle")


def test_permanent_failure_skips_retries_and_keeps_compensate_input(wf_name):
    """permanent=True fails at once despite max_retries, with the given compensate input."""
    txn = make_txn(make_plan(wf_name, opts("a", max_retries=5)))
    txn.next_stage()
    err = PermanentStepFailure("nope", {"partial": 1}, has_compensate_input=True)
    assert fail(txn, "a", err, permanent=True, compensate_input={"partial": 1}) is FailureOutcome.COMPENSATE
    assert txn.steps[0].attempts == 1
    assert txn.steps[0].comp_input == {"partial": 1}
    assert txn.errors[0].exception is err
    assert txn.errors[0].error["name"] == "PermanentStepFailure"


def test_step_timeout_is_permanent_and_marks_timeout(wf_name):
    """timeout=True fails at once with state timeout; a late output is kept for the compensation."""
    txn = make_txn(make_plan(wf_name, opts("a", max_retries=3)))
    txn.next_stage()
    outcome = fail(txn, "a", StepTimeoutError(), timeout=True, output="late", compensate_input="late-undo",
                   has_output=True)
    assert outcome is FailureOutcome.COMPENSATE
    assert record(txn, "a") == ("timeout", "permanent_failure", "dormant", "idle")
    assert txn.outputs[0] == "late"
    assert txn.steps[0].comp_input == "late-undo"
    assert txn.needs_compensation(0)


def test_continue_on_permanent_failure_says_continue(wf_name):
    """continue_on_permanent_failure records the failure, sets hasFailedSteps and goes on."""
    txn = make_txn(make_plan(wf_name, opts("a", continue_on_permanent_failure=True, max_retries=1), "b"))
    txn.next_stage()
    assert fail(txn, "a") is FailureOutcome.RETRY
    assert fail(txn, "a") is FailureOutcome.CONTINUE
    assert txn.failing is False
    assert txn.has_failed_steps is True
    assert record(txn, "a") == ("failed", "permanent_failure", "dormant", "idle")
    assert len(txn.errors) == 1
    run_stage_ok(txn)
    assert txn.finish_invoking() is TransactionState.DONE


def test_transaction_timeout_is_never_ignored(wf_name):
    """A workflow timeout asks for compensation even on a continue/skip-on-failure step."""
    for flag in ({"continue_on_permanent_failure": True}, {"skip_on_permanent_failure": True}):
        txn = make_txn(make_plan(wf_name, opts("a", **flag), "b"))
        txn.next_stage()
        outcome = fail(txn, "a", TransactionTimeoutError(), transaction_timeout=True)
        assert outcome is FailureOutcome.COMPENSATE
        assert txn.failing is True
        assert record(txn, "a") == ("timeout", "permanent_failure", "dormant", "idle")
        assert record(txn, "b") == ("not_started", "idle", "dormant", "idle")


def test_skip_on_permanent_failure_true_skips_every_later_step(wf_name):
    """skip_on_permanent_failure=True marks every later step skipped_failure and continues."""
    txn = make_txn(make_plan(wf_name, "a", opts("b", skip_on_permanent_failure=True), ("c", "d"), "e"))
    run_stage_ok(txn)
    txn.next_stage()
    assert fail(txn, "b") is FailureOutcome.CONTINUE
    assert txn.failing is False
    assert txn.has_skipped_on_failure_steps is True
    for n in "cde":
        assert record(txn, n) == ("skipped_failure", "idle", "dormant", "idle")
        assert not txn.is_pending(index(txn, n))
    assert record(txn, "a") == ("done", "ok", "dormant", "idle")
    assert txn.finish_invoking() is TransactionState.DONE


def test_skip_on_permanent_failure_until_a_named_step(wf_name):
    """medusa-behaviour §11.5: step1(skip->"step3"), parallelize(step2, step3), step4: only step2 skipped."""
    txn = make_txn(make_plan(wf_name, opts("step1", skip_on_permanent_failure="step3"),
                             ("step2", "step3"), "step4"))
    txn.next_stage()
    assert fail(txn, "step1") is FailureOutcome.CONTINUE
    assert record(txn, "step2") == ("skipped_failure", "idle", "dormant", "idle")
    assert record(txn, "step3") == ("not_started", "idle", "dormant", "idle")
    assert record(txn, "step4") == ("not_started", "idle", "dormant", "idle")
    assert txn.has_skipped_on_failure_steps is True
    stage = txn.next_stage()
    assert [n for n in names(txn, stage) if txn.is_pending(index(txn, n))] == ["step3"]
    run_stage_ok_after = [i for i in stage if txn.is_pending(i)]
    for i in run_stage_ok_after:
        succeed(txn, txn.plan.steps[i].name)
    run_stage_ok(txn)
    assert record(txn, "step3") == ("done", "ok", "dormant", "idle")
    assert record(txn, "step4") == ("done", "ok", "dormant", "idle")
    assert txn.finish_invoking() is TransactionState.DONE


def test_skip_until_a_step_in_a_later_stage_skips_whole_stages_before_it(wf_name):
    """skip->"d" skips every step of the stages between the failing step and d, not d or later."""
    txn = make_txn(make_plan(wf_name, opts("a", skip_on_permanent_failure="d"), ("b", "c"), "d", "e"))
    txn.next_stage()
    assert fail(txn, "a") is FailureOutcome.CONTINUE
    assert [record(txn, n)[0] for n in "bcde"] == ["skipped_failure", "skipped_failure", "not_started",
                                                   "not_started"]


def test_compensation_stages_are_newest_first_with_parallel_siblings_grouped(wf_name):
    """a, (b, c), d fails: compensation stages are [d], [b, c], [a]; never-started e is left out."""
    txn = make_txn(make_plan(wf_name, "a", ("b", "c"), "d", "e"))
    run_stage_ok(txn)
    run_stage_ok(txn)
    txn.next_stage()
    assert fail(txn, "d") is FailureOutcome.COMPENSATE
    txn.begin_compensation(2.0)
    assert txn.state is TransactionState.COMPENSATING
    assert [names(txn, g) for g in txn.compensation_stages()] == [["d"], ["b", "c"], ["a"]]


def test_skipped_and_unstarted_steps_are_not_compensated(wf_name):
    """Skipped and skipped_failure steps are left out of the compensation; failed ones are in."""
    txn = make_txn(make_plan(wf_name, "a", ("b", "c"), opts("d", continue_on_permanent_failure=True), "e",
                             opts("f", skip_on_permanent_failure="h"), "g", "h"))
    run_stage_ok(txn)
    txn.next_stage()
    txn.invoke_skipped(index(txn, "b"))     # a false `when`: skipped without an attempt
    succeed(txn, "c", "c", "c")
    txn.next_stage()
    assert fail(txn, "d") is FailureOutcome.CONTINUE
    run_stage_ok(txn)
    txn.next_stage()
    assert fail(txn, "f") is FailureOutcome.CONTINUE
    assert txn.next_stage() == (index(txn, "g"),)
    assert not txn.is_pending(index(txn, "g"))
    txn.next_stage()
    assert fail(txn, "h") is FailureOutcome.COMPENSATE
    assert txn.has_skipped_steps is True
    assert record(txn, "b") == ("skipped", "ok", "dormant", "idle")
    txn.begin_compensation()
    assert [names(txn, g) for g in txn.compensation_stages()] == [["h"], ["f"], ["e"], ["d"], ["c"], ["a"]]


def test_attempts_and_failures_restart_for_the_compensation(wf_name):
    """A step that needed 3 attempts starts its compensation at attempt 1 with 0 failures."""
    txn = make_txn(make_plan(wf_name, opts("a", max_retries=2), "b"))
    txn.next_stage()
    assert fail(txn, "a") is FailureOutcome.RETRY
    assert fail(txn, "a") is FailureOutcome.RETRY
    succeed(txn, "a", "A", "undo-A")
    assert (txn.steps[0].attempts, txn.steps[0].failures) == (3, 2)
    txn.next_stage()
    fail(txn, "b")
    txn.begin_compensation()
    assert txn.start_compensate(0) == 1
    assert (txn.steps[0].attempts, txn.steps[0].failures) == (1, 0)
    assert record(txn, "a") == ("done", "ok", "compensating", "waiting_response")
    # compensation retries: failures <= max_retries -> RETRY
    assert txn.compensate_failed(0, "x") is FailureOutcome.RETRY
    assert record(txn, "a")[2:] == ("compensating", "temp_failure")
    assert txn.start_compensate(0) == 2
    txn.compensate_succeeded(0, {"undone": True})
    assert record(txn, "a") == ("done", "ok", "reverted", "ok")
    assert (txn.steps[0].attempts, txn.steps[0].failures) == (2, 1)
    assert txn.comp_outputs == {"a": {"undone": True}}
    assert txn.has_reverted_steps is True


def test_all_compensations_succeed_gives_reverted(wf_name):
    """Compensating every step successfully ends reverted; a step without compensation is reverted/idle."""
    txn = make_txn(make_plan(wf_name, "a", "b"))
    run_stage_ok(txn)
    txn.next_stage()
    fail(txn, "b")
    txn.begin_compensation()
    groups = txn.compensation_stages()
    assert [names(txn, g) for g in groups] == [["b"], ["a"]]
    txn.compensate_skipped(index(txn, "b"))           # no compensate function
    txn.start_compensate(index(txn, "a"))
    txn.compensate_succeeded(index(txn, "a"), None)
    assert record(txn, "b") == ("failed", "permanent_failure", "reverted", "idle")
    assert record(txn, "a") == ("done", "ok", "reverted", "ok")
    assert txn.comp_outputs == {}                     # None outputs are not kept
    assert txn.compensation_stages() == []            # nothing left to compensate
    assert txn.finish_compensating() is TransactionState.REVERTED


def test_a_compensation_failing_after_its_retries_gives_failed(wf_name):
    """A compensation failing max_retries+1 times is failed/permanent_failure and the run ends failed."""
    txn = make_txn(make_plan(wf_name, opts("a", max_retries=1), "b"))
    run_stage_ok(txn)
    txn.next_stage()
    fail(txn, "b")
    txn.begin_compensation()
    txn.compensate_skipped(1)
    txn.start_compensate(0)
    assert txn.compensate_failed(0, ValueError("c1")) is FailureOutcome.RETRY
    txn.start_compensate(0)
    assert txn.compensate_failed(0, ValueError("c2")) is FailureOutcome.CONTINUE
    assert record(txn, "a") == ("done", "ok", "failed", "permanent_failure")
    assert [(e.action, e.handler_type) for e in txn.errors] == [("b", "invoke"), ("a", "compensate")]
    assert [e.action for e in txn.invoke_errors()] == ["b"]
    assert txn.errors[1].error["message"] == "c2"
    assert txn.finish_compensating() is TransactionState.FAILED


def test_cancel_of_a_done_transaction_compensates(wf_name):
    """begin_compensation(cancel=True) on a done transaction is allowed and records cancelled_at."""
    txn = make_txn(make_plan(wf_name, "a"))
    run_stage_ok(txn)
    txn.finish_invoking()
    txn.begin_compensation(42.0, cancel=True)
    assert txn.state is TransactionState.COMPENSATING
    assert txn.cancelled_at == 42.0
    assert [names(txn, g) for g in txn.compensation_stages()] == [["a"]]

