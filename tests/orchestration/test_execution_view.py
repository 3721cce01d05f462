"""The ``execution`` and ``context`` records built from a transaction (SPEC §6)."""

from __future__ import annotations

import json

from stepwork.errors import PermanentStepFailure
from stepwork.orchestration.execution_view import build_context, build_execution, build_step_record, millis
from tests.orchestration._plans import fail, make_plan, make_txn, opts, run_stage_ok

# SPEC §6. The builder also writes "cancelledAt" (execution) and "lastAttempt" (step records):
# extra keys are allowed.
EXECUTION_KEYS = {
    "state", "steps", "modelId", "options", "metadata", "startedAt", "definition", "timedOutAt",
    "hasAsyncSteps", "hasFailedSteps", "hasSkippedSteps", "hasWaitingSteps", "hasRevertedSteps",
    "hasSkippedOnFailureSteps", "transactionId", "runId",
}
STEP_KEYS = {"id", "depth", "definition", "invoke", "compensate", "attempts", "failures", "startedAt", "next"}


def _failed_run(wf_name):
    """a, (b, c), d(save_response=False), e(fails): a transaction in the middle of compensation."""
    plan = make_plan(wf_name, "a", ("b", "c"), opts("d", save_response=False), opts("e", max_retries=1), "f",
                     retention_time=60)
    txn = make_txn(plan, payload={"order": 7})
    txn.metadata["eventGroupId"] = "grp"
    run_stage_ok(txn)
    run_stage_ok(txn)
    run_stage_ok(txn)
    txn.next_stage()
    fail(txn, "e", ValueError("first"))
    fail(txn, "e", PermanentStepFailure("no stock"), permanent=True)
    txn.begin_compensation(1_700_000_002.0)
    txn.start_compensate(4)
    txn.compensate_succeeded(4, {"released": True})
    return txn


def test_execution_has_the_spec_keys(wf_name):
    """The execution dict has every SPEC §6 key (extra keys allowed) and is JSON-serializable."""
    txn = _failed_run(wf_name)
    execution = build_execution(txn)
    assert set(execution) >= EXECUTION_KEYS
    json.dumps(execution)
    assert execution["state"] == "compensating"
    assert execution["modelId"] == wf_name
    assert execution["transactionId"] == "tx-1"
    assert execution["runId"] == "run-1"
    assert execution["startedAt"] == 1_700_000_000_500
    assert execution["timedOutAt"] is None
    assert execution["metadata"] == {"eventGroupId": "grp"}
    assert execution["options"] == {"name": wf_name, "store": True, "retentionTime": 60.0}
    assert execution["definition"] == txn.plan.definition
    assert (execution["hasAsyncSteps"], execution["hasFailedSteps"], execution["hasSkippedSteps"],
            execution["hasWaitingSteps"], execution["hasRevertedSteps"],
            execution["hasSkippedOnFailureSteps"]) == (False, False, False, False, True, False)


def test_step_records_have_the_spec_fields(wf_name):
    """Step records have id, depth, definition, invoke/compensate, attempts, failures, startedAt, next."""
    txn = _failed_run(wf_name)
    steps = build_execution(txn)["steps"]
    assert list(steps) == ["_root", "_root.a", "_root.a.b", "_root.a.c", "_root.a.c.d", "_root.a.c.d.e",
                           "_root.a.c.d.e.f"]
    for step_id, rec in steps.items():
        if step_id == "_root":
            continue
        assert set(rec) >= STEP_KEYS, step_id
        assert rec["id"] == step_id
    a, b, c, d, e, f = (steps[k] for k in list(steps)[1:])
    assert a["depth"] == 1 and b["depth"] == 2 and c["depth"] == 2 and d["depth"] == 3
    assert a["next"] == ["_root.a.b", "_root.a.c"]
    assert b["next"] == []
    assert c["next"] == ["_root.a.c.d"]
    assert f["next"] == []
    assert a["definition"] == {"action": "a", "noCompensation": False}
    assert d["definition"] == {"action": "d", "noCompensation": False, "saveResponse": False}
    assert a["invoke"] == {"state": "done", "status": "ok"}
    assert a["compensate"] == {"state": "dormant", "status": "idle"}
    assert a["startedAt"] == 1_700_000_001_000
    assert e["invoke"] == {"state": "failed", "status": "permanent_failure"}
    assert e["compensate"] == {"state": "reverted", "status": "ok"}
    assert (e["attempts"], e["failures"]) == (1, 0)  # reset for the compensation, then one attempt
    assert f["invoke"] == {"state": "not_started", "status": "idle"}
    assert f["compensate"] == {"state": "dormant", "status": "idle"}
    assert (f["attempts"], f["failures"], f["startedAt"]) == (0, 0, None)
    assert build_step_record(txn, 0) == a


def test_root_record_points_at_the_first_stage(wf_name):
    """The _root record has id "_root" and next = the ids of the first stage's steps."""
    assert build_execution(make_txn(make_plan(wf_name, ("a", "b"), "c")))["steps"]["_root"] == {
        "id": "_root", "next": ["_root.a", "_root.b"]}
    assert build_execution(make_txn(make_plan(wf_name, "a")))["steps"]["_root"]["next"] == ["_root.a"]


def test_context_holds_payload_outputs_compensation_outputs_and_errors(wf_name):
    """context = {data: {payload, invoke, compensate}, errors: [{action, handler_type, error}]}."""
    txn = _failed_run(wf_name)
    context = build_context(txn)
    assert set(context) == {"data", "errors"}
    assert set(context["data"]) == {"payload", "invoke", "compensate"}
    assert context["data"]["payload"] == {"order": 7}
    # d has save_response=False; e failed; f never ran.
    assert context["data"]["invoke"] == {"a": "a", "b": "b", "c": "c"}
    assert context["data"]["compensate"] == {"e": {"released": True}}
    [error] = context["errors"]  # the temporary failure is not an error of the run
    assert error["action"] == "e"
    assert error["handler_type"] == "invoke"
    assert error["error"]["message"] == "no stock"
    assert error["error"]["name"] == "PermanentStepFailure"
    assert error["error"]["type"] == "invalid_data"
    assert isinstance(error["error"]["stack"], str)
    json.dumps(context)


def test_flags_follow_the_run(wf_name):
    """hasFailedSteps, hasSkippedSteps and hasSkippedOnFailureSteps reflect what happened."""
    txn = make_txn(make_plan(wf_name, opts("a", continue_on_permanent_failure=True), "b",
                             opts("c", skip_on_permanent_failure=True), "d"))
    txn.next_stage()
    fail(txn, "a")
    txn.next_stage()
    txn.invoke_skipped(1)
    txn.next_stage()
    fail(txn, "c")
    execution = build_execution(txn)
    assert execution["hasFailedSteps"] is True
    assert execution["hasSkippedSteps"] is True
    assert execution["hasSkippedOnFailureSteps"] is True
    assert execution["hasRevertedSteps"] is False
    assert execution["steps"]["_root.a.b.c.d"]["invoke"] == {"state": "skipped_failure", "status": "idle"}
    assert execution["steps"]["_root.a.b"]["invoke"] == {"state": "skipped", "status": "ok"}


def test_timeout_output_is_in_the_context(wf_name):
    """A timed-out step's late output is kept in context.data.invoke (Medusa stores it)."""
    txn = make_txn(make_plan(wf_name, "a"))
    txn.next_stage()
    fail(txn, "a", "late", timeout=True, output={"v": 1}, compensate_input={"v": 1}, has_output=True)
    assert build_context(txn)["data"]["invoke"] == {"a": {"v": 1}}
    assert build_execution(txn)["steps"]["_root.a"]["invoke"] == {"state": "timeout",
                                                                  "status": "permanent_failure"}


def test_millis():
    """Epoch seconds become integer epoch milliseconds; None stays None."""
    assert millis(None) is None
    assert millis(1.2345) == 1234
    assert millis(1_700_000_000.5) == 1_700_000_000_500


def test_started_at_is_the_first_attempts_time(wf_name):
    """startedAt is the first attempt's time; a retry does not move it."""
    txn = make_txn(make_plan(wf_name, opts("a", max_retries=1)))
    txn.next_stage()
    txn.start_invoke(0, 10.0)
    txn.invoke_failed(0, "x")
    txn.start_invoke(0, 20.0)
    txn.invoke_succeeded(0, 1, 1)
    rec = build_step_record(txn, 0)
    assert rec["startedAt"] == 10_000
    assert (rec["attempts"], rec["failures"]) == (2, 1)
