"""The step and transaction transition tables (medusa-behaviour §11.1, §11.2; SPEC §4)."""

from __future__ import annotations

import itertools

import pytest

from stepwork import StepState, StepStatus, StepworkError, TransactionState
from stepwork.orchestration.states import FINISHED_STATES, check_state, check_status
from tests.orchestration._plans import make_plan, make_txn, succeed

S = StepState
T = StepStatus

# medusa-behaviour §11.2, "Allowed state transitions (transaction-step.ts)".
LEGAL_STATE_MOVES = [
    (S.DORMANT, S.NOT_STARTED),
    (S.NOT_STARTED, S.INVOKING),
    (S.NOT_STARTED, S.COMPENSATING),
    (S.NOT_STARTED, S.FAILED),
    (S.NOT_STARTED, S.SKIPPED),
    (S.NOT_STARTED, S.SKIPPED_FAILURE),
    (S.INVOKING, S.FAILED),
    (S.INVOKING, S.DONE),
    (S.INVOKING, S.TIMEOUT),
    (S.INVOKING, S.SKIPPED),
    (S.COMPENSATING, S.REVERTED),
    (S.COMPENSATING, S.FAILED),
    (S.DONE, S.COMPENSATING),
]
# Every move between two different states that the table does not list.
ILLEGAL_STATE_MOVES = [
    (a, b) for a, b in itertools.permutations(StepState, 2) if (a, b) not in LEGAL_STATE_MOVES
]

# medusa-behaviour §11.2 status transitions: any -> waiting_response; waiting_response -> ok |
# temp_failure | permanent_failure; temp_failure -> idle | permanent_failure; permanent_failure -> idle.
LEGAL_STATUS_MOVES = [
    *[(s, T.WAITING_RESPONSE) for s in StepStatus],
    (T.WAITING_RESPONSE, T.OK),
    (T.WAITING_RESPONSE, T.TEMP_FAILURE),
    (T.WAITING_RESPONSE, T.PERMANENT_FAILURE),
    (T.TEMP_FAILURE, T.IDLE),
    (T.TEMP_FAILURE, T.PERMANENT_FAILURE),
    (T.PERMANENT_FAILURE, T.IDLE),
]
# Illegal in Medusa's table. (stepwork also allows idle -> ok / idle -> permanent_failure, which it
# uses for steps settled without an attempt; those are left out of both lists.)
ILLEGAL_STATUS_MOVES = [
    (T.IDLE, T.TEMP_FAILURE),
    (T.OK, T.IDLE),
    (T.OK, T.TEMP_FAILURE),
    (T.OK, T.PERMANENT_FAILURE),
    (T.WAITING_RESPONSE, T.IDLE),
    (T.TEMP_FAILURE, T.OK),
    (T.PERMANENT_FAILURE, T.OK),
    (T.PERMANENT_FAILURE, T.TEMP_FAILURE),
]


def test_state_values_are_medusas_strings():
    """The three enums carry exactly the string values of SPEC §4."""
    assert [s.value for s in TransactionState] == [
        "not_started", "invoking", "waiting_to_compensate", "compensating", "done", "reverted", "failed"]
    assert {s.value for s in StepState} == {
        "not_started", "invoking", "compensating", "done", "reverted", "failed", "dormant", "skipped",
        "skipped_failure", "timeout"}
    assert {s.value for s in StepStatus} == {"idle", "ok", "waiting_response", "temp_failure",
                                             "permanent_failure"}
    assert TransactionState.DONE == "done"
    assert {"done", "reverted", "failed"} == {s.value for s in FINISHED_STATES}


@pytest.mark.parametrize(("current", "new"), LEGAL_STATE_MOVES, ids=lambda s: str(s))
def test_legal_state_move_passes(current, new):
    """Every state move of Medusa's table is accepted and returns the new state."""
    assert check_state(current, new) is new


@pytest.mark.parametrize(("current", "new"), ILLEGAL_STATE_MOVES, ids=lambda s: str(s))
def test_illegal_state_move_raises(current, new):
    """A state move missing from the table raises unexpected_state with Medusa's message."""
    with pytest.raises(StepworkError) as info:
        check_state(current, new)
    assert info.value.type == "unexpected_state"
    assert str(info.value) == f'Updating State from "{current.value}" to "{new.value}" is not allowed.'


@pytest.mark.parametrize(("current", "new"), LEGAL_STATUS_MOVES, ids=lambda s: str(s))
def test_legal_status_move_passes(current, new):
    """Every status move of Medusa's table (including any -> waiting_response) is accepted."""
    assert check_status(current, new) is new


@pytest.mark.parametrize(("current", "new"), ILLEGAL_STATUS_MOVES, ids=lambda s: str(s))
def test_illegal_status_move_raises(current, new):
    """A status move missing from the table raises unexpected_state with Medusa's message."""
    with pytest.raises(StepworkError) as info:
        check_status(current, new)
    assert info.value.type == "unexpected_state"
    assert str(info.value) == f'Updating Status from "{current.value}" to "{new.value}" is not allowed.'


def test_transaction_cannot_finish_before_it_begins(wf_name):
    """finish_invoking on a not_started transaction raises unexpected_state and changes nothing."""
    from stepwork.orchestration.transaction import Transaction

    txn = Transaction(make_plan(wf_name, "a"), "tx", "run", None)
    with pytest.raises(StepworkError) as info:
        txn.finish_invoking()
    assert info.value.type == "unexpected_state"
    assert txn.state is TransactionState.NOT_STARTED


def test_transaction_cannot_begin_twice(wf_name):
    """begin on an invoking transaction raises unexpected_state."""
    txn = make_txn(make_plan(wf_name, "a"))
    with pytest.raises(StepworkError) as info:
        txn.begin(1.0)
    assert info.value.type == "unexpected_state"
    assert txn.state is TransactionState.INVOKING


def test_transaction_cannot_finish_compensating_while_invoking(wf_name):
    """finish_compensating without begin_compensation raises unexpected_state."""
    txn = make_txn(make_plan(wf_name, "a"))
    with pytest.raises(StepworkError) as info:
        txn.finish_compensating()
    assert info.value.type == "unexpected_state"


def test_finished_transaction_cannot_move_again(wf_name):
    """A reverted transaction refuses finish_invoking and a second compensation."""
    txn = make_txn(make_plan(wf_name, "a"))
    txn.next_stage()
    succeed(txn, "a")
    txn.begin_compensation()
    assert txn.state is TransactionState.COMPENSATING
    assert txn.finish_compensating() is TransactionState.REVERTED
    assert txn.is_finished
    with pytest.raises(StepworkError) as info:
        txn.finish_invoking()
    assert info.value.type == "unexpected_state"
    with pytest.raises(StepworkError) as info:
        txn.begin_compensation()
    assert info.value.type == "unexpected_state"


def test_done_transaction_cannot_be_finished_twice(wf_name):
    """finish_invoking twice raises unexpected_state the second time."""
    txn = make_txn(make_plan(wf_name, "a"))
    txn.next_stage()
    succeed(txn, "a")
    assert txn.finish_invoking() is TransactionState.DONE
    with pytest.raises(StepworkError) as info:
        txn.finish_invoking()
    assert info.value.type == "unexpected_state"


def test_cancel_of_failed_or_compensating_transaction_is_not_allowed(wf_name):
    """Cancel (begin_compensation(cancel=True)) of a failed or compensating transaction raises not_allowed."""
    txn = make_txn(make_plan(wf_name, "a"))
    txn.begin_compensation()
    with pytest.raises(StepworkError) as info:
        txn.begin_compensation(cancel=True)
    assert info.value.type == "not_allowed"
    txn.comp_failed = True
    assert txn.finish_compensating() is TransactionState.FAILED
    with pytest.raises(StepworkError) as info:
        txn.begin_compensation(cancel=True)
    assert info.value.type == "not_allowed"


def test_step_level_illegal_moves_raise_through_the_transaction(wf_name):
    """Recording a success for a step never started, or compensating a dormant record, raises."""
    txn = make_txn(make_plan(wf_name, "a", "b"))
    with pytest.raises(StepworkError, match=r'Updating State from "not_started" to "done" is not allowed\.'):
        txn.invoke_succeeded(0, 1, 1)
    with pytest.raises(StepworkError, match=r'Updating State from "dormant" to "reverted" is not allowed\.'):
        txn.compensate_succeeded(1, None)
    succeed(txn, "a")
    with pytest.raises(StepworkError) as info:
        txn.invoke_succeeded(0, 2, 2)  # done -> done: a step cannot succeed twice
    assert info.value.type == "unexpected_state"
