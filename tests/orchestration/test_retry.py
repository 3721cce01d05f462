"""Retry waits: exponential backoff, the cap, jitter, and validation of the three options (SPEC §1.2)."""

from __future__ import annotations

import json
import math
import sys
from datetime import timedelta
from typing import Any

import pytest

from stepwork import StepResponse, StepworkError, create_step, create_workflow
from stepwork.orchestration.definition import parse_step_options
from stepwork.orchestration.retry import MAX_RETRY_DELAY, retry_delay
from stepwork.orchestration.transaction import FailureOutcome
from tests.orchestration._plans import fail, index, make_plan, make_txn, opts, run_stage_ok


def _never() -> float:
    raise AssertionError("random() must not be called without jitter")


def _waits(n: int, **options: Any) -> list[float]:
    o = opts("s", **options)
    return [retry_delay(o, failures, _never) for failures in range(1, n + 1)]


# -- the wait sequence --------------------------------------------------------------------------


def test_backoff_two_doubles_each_wait() -> None:
    """retry_backoff=2 from 1 s gives 1, 2, 4, 8 s."""
    assert _waits(4, retry_interval=1, retry_backoff=2) == [1.0, 2.0, 4.0, 8.0]


def test_fractional_backoff_and_interval() -> None:
    """retry_interval * retry_backoff ** (failures - 1) with non-integer values."""
    assert _waits(3, retry_interval=0.5, retry_backoff=1.5) == pytest.approx([0.5, 0.75, 1.125])


def test_defaults_reproduce_the_fixed_interval() -> None:
    """Without the new options every wait is retry_interval (Medusa's fixed interval)."""
    assert _waits(5, retry_interval=3) == [3.0] * 5
    assert _waits(3, retry_interval=timedelta(milliseconds=250)) == [0.25] * 3
    o = opts("s", retry_interval=2)
    assert (o.retry_backoff, o.retry_max_interval, o.retry_jitter) == (1.0, None, 0.0)


def test_no_interval_means_no_wait() -> None:
    """retry_interval None or 0 gives 0.0 whatever the other options say, and draws nothing."""
    assert _waits(3, retry_backoff=2, retry_max_interval=5, retry_jitter=0.5) == [0.0] * 3
    assert _waits(3, retry_interval=0, retry_backoff=2, retry_jitter=1) == [0.0] * 3


def test_max_interval_caps_each_wait() -> None:
    """retry_max_interval caps the grown wait: 1, 2, 4, 5, 5."""
    assert _waits(5, retry_interval=1, retry_backoff=2, retry_max_interval=5) == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_max_interval_below_the_interval_caps_the_first_wait_too() -> None:
    """A cap shorter than retry_interval applies from the first wait."""
    assert _waits(2, retry_interval=10, retry_max_interval=4) == [4.0, 4.0]


@pytest.mark.parametrize("failures", [1_100, 10**6, 10**400])
def test_huge_failure_counts_do_not_overflow(failures: int) -> None:
    """A huge exponent returns the cap, finite, with no OverflowError."""
    capped = opts("s", retry_interval=1, retry_backoff=10, retry_max_interval=60)
    assert retry_delay(capped, failures, _never) == 60.0
    uncapped = opts("s", retry_interval=1, retry_backoff=sys.float_info.max)
    assert retry_delay(uncapped, failures, _never) == MAX_RETRY_DELAY


def test_uncapped_growth_stops_at_max_retry_delay_but_a_long_interval_is_kept() -> None:
    """Without retry_max_interval growth stops at MAX_RETRY_DELAY; a longer fixed interval is untouched."""
    assert retry_delay(opts("s", retry_interval=1, retry_backoff=2), 200, _never) == MAX_RETRY_DELAY
    long = MAX_RETRY_DELAY * 2
    assert retry_delay(opts("s", retry_interval=long), 7, _never) == long
    assert retry_delay(opts("s", retry_interval=long, retry_backoff=2), 7, _never) == long
    assert math.isfinite(retry_delay(opts("s", retry_interval=5e-324, retry_backoff=2), 5000, _never))


def test_failures_must_be_at_least_one() -> None:
    """failures counts failed attempts so far: 0, negatives and non-integers are a caller bug."""
    o = opts("s", retry_interval=1)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="failures"):
            retry_delay(o, bad, _never)  # type: ignore[arg-type]


# -- jitter ---------------------------------------------------------------------------------------


def test_jitter_bounds_with_a_fake_random() -> None:
    """random() 0 gives wait*(1-jitter), 1 gives the full wait, 0.5 the middle; it is drawn once."""
    o = opts("s", retry_interval=1, retry_backoff=2, retry_jitter=0.5)
    draws: list[float] = []

    def fake(value: float) -> Any:
        def random() -> float:
            draws.append(value)
            return value
        return random

    assert retry_delay(o, 3, fake(0.0)) == 2.0   # wait 4, lower bound 4 * 0.5
    assert retry_delay(o, 3, fake(1.0)) == 4.0
    assert retry_delay(o, 3, fake(0.5)) == 3.0
    assert draws == [0.0, 1.0, 0.5]


def test_full_jitter_goes_down_to_zero() -> None:
    """retry_jitter=1 draws from [0, wait]."""
    o = opts("s", retry_interval=8, retry_jitter=1)
    assert retry_delay(o, 1, lambda: 0.0) == 0.0
    assert retry_delay(o, 1, lambda: 0.25) == 2.0


def test_jitter_applies_after_the_cap() -> None:
    """The cap is applied first, then jitter scales the capped wait."""
    o = opts("s", retry_interval=1, retry_backoff=2, retry_max_interval=5, retry_jitter=0.2)
    assert retry_delay(o, 10, lambda: 0.0) == pytest.approx(4.0)
    assert retry_delay(o, 10, lambda: 1.0) == 5.0


def test_jitter_zero_is_exact_and_draws_nothing() -> None:
    """retry_jitter=0 returns the exact wait without calling random()."""
    assert retry_delay(opts("s", retry_interval=1, retry_backoff=3, retry_jitter=0), 3, _never) == 9.0


@pytest.mark.parametrize("value", [-0.1, 1.5, math.nan, None, "0.5"])
def test_random_outside_unit_interval_is_refused(value: Any) -> None:
    """A random() returning something outside [0, 1] is a caller bug: ValueError."""
    o = opts("s", retry_interval=1, retry_jitter=0.5)
    with pytest.raises(ValueError, match=r"random\(\)"):
        retry_delay(o, 1, lambda: value)


# -- compensation retries -------------------------------------------------------------------------


def test_compensation_failures_restart_so_its_waits_grow_from_the_interval_again(wf_name: str) -> None:
    """The failure count the engine passes restarts at compensation: 1 s, 2 s, 4 s again."""
    plan = make_plan(wf_name, opts("a", max_retries=3, retry_interval=1, retry_backoff=2), "b")
    txn = make_txn(plan)
    i = index(txn, "a")
    for _ in range(3):
        assert fail(txn, "a") is FailureOutcome.RETRY
    assert retry_delay(plan.steps[i].options, txn.failures[i], _never) == 4.0
    run_stage_ok(txn)
    run_stage_ok(txn)
    txn.start_compensate(i)
    assert txn.compensate_failed(i, "nope") is FailureOutcome.RETRY
    assert retry_delay(plan.steps[i].options, txn.failures[i], _never) == 1.0


# -- validation -----------------------------------------------------------------------------------


def test_valid_values_parse() -> None:
    """Valid values are kept (ints stay ints, timedelta becomes seconds)."""
    o = parse_step_options("s", {"retry_backoff": 2, "retry_max_interval": timedelta(minutes=1),
                                 "retry_jitter": 0.25})
    assert (o.retry_backoff, o.retry_max_interval, o.retry_jitter) == (2, 60.0, 0.25)
    o = parse_step_options("s", {"retry_backoff": 1, "retry_max_interval": None, "retry_jitter": 1})
    assert (o.retry_backoff, o.retry_max_interval, o.retry_jitter) == (1, None, 1)


INVALID = [
    ("retry_backoff", 0.5, ">= 1"),
    ("retry_backoff", 0, ">= 1"),
    ("retry_backoff", -2, ">= 1"),
    ("retry_backoff", math.nan, ">= 1"),
    ("retry_backoff", math.inf, ">= 1"),
    ("retry_backoff", True, ">= 1"),
    ("retry_backoff", "2", ">= 1"),
    ("retry_backoff", None, ">= 1"),
    ("retry_max_interval", 0, "> 0 seconds"),
    ("retry_max_interval", -1, "> 0 seconds"),
    ("retry_max_interval", timedelta(0), "> 0 seconds"),
    ("retry_max_interval", math.nan, "number of seconds"),
    ("retry_max_interval", math.inf, "number of seconds"),
    ("retry_max_interval", False, "number of seconds"),
    ("retry_max_interval", "10", "number of seconds"),
    ("retry_jitter", -0.1, "from 0 to 1"),
    ("retry_jitter", 1.01, "from 0 to 1"),
    ("retry_jitter", 2, "from 0 to 1"),
    ("retry_jitter", math.nan, "from 0 to 1"),
    ("retry_jitter", -math.inf, "from 0 to 1"),
    ("retry_jitter", True, "from 0 to 1"),
    ("retry_jitter", "0.1", "from 0 to 1"),
    ("retry_jitter", None, "from 0 to 1"),
]


def _one(_: Any) -> StepResponse[int, int]:
    return StepResponse(1)


def _check(err: StepworkError, step: str, option: str, expected: str) -> None:
    assert err.type == "invalid_data"
    assert f'step "{step}"' in err.message
    assert f'"{option}"' in err.message
    assert expected in err.message


@pytest.mark.parametrize(("option", "value", "expected"), INVALID, ids=repr)
def test_invalid_value_refused_by_create_step(option: str, value: Any, expected: str) -> None:
    """create_step with a bad value raises invalid_data naming the step and the option."""
    with pytest.raises(StepworkError) as info:
        create_step({"name": "charge-card", option: value}, _one)
    _check(info.value, "charge-card", option, expected)


@pytest.mark.parametrize(("option", "value", "expected"), INVALID, ids=repr)
def test_invalid_value_refused_by_config_at_a_call_site(wf_name: str, option: str, value: Any,
                                                        expected: str) -> None:
    """ref.config(...) inside a composer with a bad value raises invalid_data naming the step and option."""
    s = create_step("ship-order", _one)
    with pytest.raises(StepworkError) as info:
        create_workflow(wf_name, lambda inp: s().config(**{option: value}))
    _check(info.value, "ship-order", option, expected)


def test_camel_case_spelling_suggests_the_option() -> None:
    """A Medusa-style camelCase key gets the snake_case name suggested."""
    with pytest.raises(StepworkError, match='Did you mean "retry_backoff"'):
        parse_step_options("s", {"retryBackoff": 2})


# -- the stored definition ------------------------------------------------------------------------


def test_options_reach_the_stored_definition_in_camel_case(wf_name: str) -> None:
    """Non-default values appear in wf.definition as retryBackoff/retryMaxInterval/retryJitter."""
    a = create_step({"name": "a", "retry_interval": 1, "retry_backoff": 2}, _one)
    b = create_step("b", _one)
    c = create_step("c", _one)

    def composer(inp: Any) -> None:
        a()
        b().config(retry_interval=2, retry_max_interval=30, retry_jitter=0.5)
        c()

    wf = create_workflow(wf_name, composer)
    tree = json.loads(json.dumps(wf.definition))
    first = tree["next"]
    assert (first["retryInterval"], first["retryBackoff"]) == (1, 2)
    assert "retryMaxInterval" not in first and "retryJitter" not in first
    second = first["next"]
    assert (second["retryInterval"], second["retryMaxInterval"], second["retryJitter"]) == (2, 30, 0.5)
    assert "retryBackoff" not in second
    third = second["next"]
    assert not {"retryBackoff", "retryMaxInterval", "retryJitter"} & set(third)
