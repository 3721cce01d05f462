"""WorkflowResult: result, errors, transaction and acknowledgement (SPEC §2.1, §6)."""

from __future__ import annotations

import json

from stepwork import StepFailure, StepResponse, TransactionState, WorkflowResult, create_step, create_workflow

SPEC_EXECUTION_KEYS = {
    "state", "steps", "modelId", "options", "metadata", "startedAt", "definition", "timedOutAt",
    "hasAsyncSteps", "hasFailedSteps", "hasSkippedSteps", "hasWaitingSteps", "hasRevertedSteps",
    "hasSkippedOnFailureSteps", "transactionId", "runId",
}


async def test_successful_result_and_acknowledgement(wf_name):
    """A done run: result, no errors, acknowledgement has_finished and not has_failed, transaction ids."""
    a = create_step("a", lambda inp: {"n": inp["n"] + 1})
    wf = create_workflow(wf_name, lambda inp: a(inp))
    result = await wf.run({"n": 1}, transaction_id="tx-ok")
    assert isinstance(result, WorkflowResult)
    assert result.result == {"n": 2}
    assert result.errors == []
    ack = result.acknowledgement
    assert (ack.workflow_id, ack.transaction_id, ack.has_finished, ack.has_failed) == (wf_name, "tx-ok", True, False)
    assert ack.to_dict() == {"workflow_id": wf_name, "transaction_id": "tx-ok", "has_finished": True,
                             "has_failed": False}
    txn = result.transaction
    assert txn.transaction_id == "tx-ok"
    assert txn.state is TransactionState.DONE
    assert txn.state == "done"
    assert isinstance(txn.run_id, str) and txn.run_id
    assert txn.execution["state"] == "done"
    assert txn.execution["transactionId"] == "tx-ok"
    assert txn.execution["runId"] == txn.run_id
    assert txn.execution["modelId"] == wf_name
    assert isinstance(txn.execution["startedAt"], int)
    assert set(txn.execution) >= SPEC_EXECUTION_KEYS
    assert txn.context == {"data": {"payload": {"n": 1}, "invoke": {"a": {"n": 2}}, "compensate": {}},
                           "errors": []}
    json.dumps(txn.execution)
    json.dumps(txn.context)


async def test_default_transaction_id_and_new_run_ids(wf_name):
    """Without a transaction id the id is "auto-" + a ULID; every run gets a new run id."""
    a = create_step("a", lambda: 1)
    wf = create_workflow(wf_name, lambda inp: a())
    r1, r2 = await wf.run(), await wf.run()
    assert r1.transaction.transaction_id.startswith("auto-")
    assert len(r1.transaction.transaction_id) == len("auto-") + 26
    assert r1.transaction.transaction_id != r2.transaction.transaction_id
    assert r1.transaction.run_id != r2.transaction.run_id
    assert r1.acknowledgement.transaction_id == r1.transaction.transaction_id


async def test_failed_run_result_has_only_invoke_errors(wf_name):
    """A run whose compensation also fails: result.errors lists only invoke-phase failures."""
    a = create_step("a", lambda: "A", lambda ci: 1 / 0)
    b = create_step("b", lambda: StepResponse.permanent_failure("b says no"))
    result = await create_workflow(wf_name, lambda inp: (a(), b())).run(throw_on_error=False)
    assert result.transaction.state == "failed"
    assert result.result == ("A", None)  # resolved even on failure; b produced nothing
    [failure] = result.errors
    assert isinstance(failure, StepFailure)
    assert (failure.action, failure.handler_type) == ("b", "invoke")
    assert set(failure.error) >= {"message", "name", "stack"}
    assert failure.error["message"] == "b says no"
    assert failure.error["type"] == "invalid_data"
    assert [(e["action"], e["handler_type"]) for e in result.transaction.context["errors"]] == [
        ("b", "invoke"), ("a", "compensate")]
    ack = result.acknowledgement
    assert (ack.has_finished, ack.has_failed) == (True, True)
    assert result.transaction.execution["state"] == "failed"


async def test_reverted_run_acknowledgement(wf_name):
    """A reverted run is finished and failed; its execution records the reverted state."""
    a = create_step("a", lambda: 1 / 0)
    result = await create_workflow(wf_name, lambda inp: a()).run(throw_on_error=False)
    assert result.transaction.state == "reverted"
    assert (result.acknowledgement.has_finished, result.acknowledgement.has_failed) == (True, True)
    assert result.transaction.execution["state"] == "reverted"


async def test_result_from_returns_a_steps_output(wf_name):
    """result_from="a" returns a's output instead of the composer's value."""
    a = create_step("a", lambda: "from a")
    b = create_step("b", lambda: "from b")
    result = await create_workflow(wf_name, lambda inp: (a(), b())[1]).run(result_from="a")
    assert result.result == "from a"
