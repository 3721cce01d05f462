"""Plans: step ids, depths, the stored definition tree, forced storing and option parsing."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import pytest

from stepwork import StepworkError
from stepwork.orchestration.definition import Plan, parse_step_options, parse_workflow_options
from tests.orchestration._plans import make_plan, opts


def test_sequential_steps_nest_under_each_other(wf_name):
    """Stage after stage, each step id extends the previous one: _root.a, _root.a.b, _root.a.b.c."""
    plan = make_plan(wf_name, "a", "b", "c")
    assert [s.id for s in plan.steps] == ["_root.a", "_root.a.b", "_root.a.b.c"]
    assert [s.depth for s in plan.steps] == [1, 2, 3]
    assert plan.stages == ((0,), (1,), (2,))
    assert plan.workflow_id == wf_name


def test_parallel_siblings_share_the_parent_prefix_and_next_stage_hangs_under_last(wf_name):
    """parallelize(b, c) after a gives _root.a.b and _root.a.c; d hangs under the last sibling c."""
    plan = make_plan(wf_name, "a", ("b", "c"), "d", ("e", "f", "g"))
    ids = {s.name: s.id for s in plan.steps}
    assert ids == {
        "a": "_root.a",
        "b": "_root.a.b",
        "c": "_root.a.c",
        "d": "_root.a.c.d",
        "e": "_root.a.c.d.e",
        "f": "_root.a.c.d.f",
        "g": "_root.a.c.d.g",
    }
    assert {s.name: s.depth for s in plan.steps} == {"a": 1, "b": 2, "c": 2, "d": 3, "e": 4, "f": 4, "g": 4}
    assert plan.stages == ((0,), (1, 2), (3,), (4, 5, 6))
    assert [plan.stage_of(i) for i in range(7)] == [0, 1, 1, 2, 3, 3, 3]


def test_first_stage_may_be_parallel(wf_name):
    """A parallel first stage hangs its steps directly under _root."""
    plan = make_plan(wf_name, ("a", "b"), "c")
    assert [s.id for s in plan.steps] == ["_root.a", "_root.b", "_root.b.c"]
    assert [s.depth for s in plan.steps] == [1, 1, 2]


def test_plan_step_lookup(wf_name):
    """plan.step(name) finds a step; an unknown name raises not_found listing the steps."""
    plan = make_plan(wf_name, "a", ("b", "c"))
    assert plan.step("c").index == 2
    assert plan.step("c").stage == 1
    with pytest.raises(StepworkError) as info:
        plan.step("zzz")
    assert info.value.type == "not_found"
    assert "zzz" in str(info.value) and "a, b, c" in str(info.value)


def test_definition_tree_uses_camel_case_options_and_no_compensation(wf_name):
    """The definition is a next-chain of {action, noCompensation, camelCase non-default options}."""
    plan = make_plan(
        wf_name,
        opts("a", max_retries=2, retry_interval=0.5, timeout=3),
        (opts("b", continue_on_permanent_failure=True, thread=True),
         opts("c", skip_on_permanent_failure="d", auto_retry=False)),
        opts("d", save_response=False, no_compensation=True, **{"async": True}, compensate_async=True,
             background_execution=True, retry_interval_awaiting=2, max_awaiting_retries=4),
    )
    assert plan.definition == {
        "next": {
            "action": "a", "noCompensation": False, "maxRetries": 2, "retryInterval": 0.5, "timeout": 3.0,
            "next": [
                {"action": "b", "noCompensation": False, "continueOnPermanentFailure": True, "thread": True},
                {"action": "c", "noCompensation": False, "skipOnPermanentFailure": "d", "autoRetry": False,
                 "next": {"action": "d", "noCompensation": True, "saveResponse": False, "async": True,
                          "compensateAsync": True, "backgroundExecution": True,
                          "retryIntervalAwaiting": 2.0, "maxAwaitingRetries": 4}},
            ],
        },
    }
    json.dumps(plan.definition)
    assert plan.steps[0].definition == {"action": "a", "noCompensation": False, "maxRetries": 2,
                                        "retryInterval": 0.5, "timeout": 3.0}


def test_empty_plan_has_empty_definition(wf_name):
    """A workflow without steps has no stages and an empty definition."""
    plan = make_plan(wf_name)
    assert plan.steps == ()
    assert plan.stages == ()
    assert plan.definition == {}


def test_store_is_off_by_default(wf_name):
    """Without storing options, the plan is not stored and has no async steps."""
    plan = make_plan(wf_name, opts("a", max_retries=3), opts("b", continue_on_permanent_failure=True))
    assert plan.store is False
    assert plan.has_async_steps is False


@pytest.mark.parametrize("step_options", [
    {"retry_interval": 0.01},
    {"timeout": 1},
    {"async": True},
    {"compensate_async": True},
    {"retry_interval_awaiting": 1},
], ids=lambda o: next(iter(o)))
def test_step_options_force_storing(wf_name, step_options):
    """retry_interval, timeout and async step options force the plan to be stored."""
    plan = make_plan(wf_name, "a", opts("b", **step_options))
    assert plan.store is True
    assert plan.options.to_definition(store=plan.store)["store"] is True


def test_async_steps_set_has_async_steps(wf_name):
    """An async (or compensate_async) step sets has_async_steps."""
    assert make_plan(wf_name, opts("a", **{"async": True})).has_async_steps is True
    assert make_plan(wf_name, opts("a", compensate_async=True)).has_async_steps is True


@pytest.mark.parametrize("workflow_options", [
    {"store": True},
    {"idempotent": True},
    {"retention_time": 60},
    {"retention_time": 0},
    {"timeout": 5},
    {"schedule": "*/5 * * * *"},
    {"schedule": {"interval": 10}},
], ids=lambda o: f"{next(iter(o))}={next(iter(o.values()))}")
def test_workflow_options_force_storing(wf_name, workflow_options):
    """store, idempotent, retention_time, timeout and schedule force the plan to be stored."""
    assert make_plan(wf_name, "a", **workflow_options).store is True


def test_workflow_options_definition(wf_name):
    """The stored options are camelCase and carry the derived store flag."""
    plan = make_plan(wf_name, "a", retention_time=timedelta(minutes=2), idempotent=True, timeout=1.5)
    assert plan.options.to_definition(store=plan.store) == {
        "name": wf_name, "store": True, "retentionTime": 120.0, "idempotent": True, "timeout": 1.5}


def test_skip_on_permanent_failure_may_name_a_later_step(wf_name):
    """skip_on_permanent_failure naming a step of a later stage is accepted."""
    plan = make_plan(wf_name, opts("a", skip_on_permanent_failure="c"), ("b", "c"), "d")
    assert plan.steps[0].options.skip_on_permanent_failure == "c"


@pytest.mark.parametrize(("stages", "target"), [
    (("a", opts("b", skip_on_permanent_failure="a"), "c"), "a"),          # an earlier step
    ((opts("a", skip_on_permanent_failure="a"), "b"), "a"),               # itself
    (((opts("a", skip_on_permanent_failure="b"), "b"), "c"), "b"),        # a parallel sibling
    (("a", opts("b", skip_on_permanent_failure="nope")), "nope"),         # no such step
], ids=["earlier", "itself", "sibling", "unknown"])
def test_skip_on_permanent_failure_naming_a_step_that_is_not_later_raises(wf_name, stages, target):
    """skip_on_permanent_failure must name a step of a later stage, else invalid_data naming it."""
    with pytest.raises(StepworkError) as info:
        make_plan(wf_name, *stages)
    assert info.value.type == "invalid_data"
    assert f'skip_on_permanent_failure="{target}"' in str(info.value)


def test_step_option_defaults_and_normalisation():
    """Defaults follow SPEC §1.2; timedelta becomes seconds, max_retries None becomes 0."""
    o = parse_step_options("s", {})
    assert (o.name, o.max_retries, o.retry_interval, o.auto_retry, o.timeout, o.is_async) == (
        "s", 0, None, True, None, False)
    assert (o.continue_on_permanent_failure, o.skip_on_permanent_failure, o.no_compensation,
            o.save_response, o.thread) == (False, False, False, True, False)
    o = parse_step_options("s", {"timeout": timedelta(milliseconds=250), "max_retries": None,
                                 "retry_interval": 0})
    assert o.timeout == 0.25
    assert o.max_retries == 0
    assert o.retry_interval == 0.0
    assert parse_step_options("s", {"name": "t"}).name == "t"
    base = parse_step_options("s", {"max_retries": 3})
    assert parse_step_options("s", {"timeout": 1}, base=base).max_retries == 3


@pytest.mark.parametrize("options", [
    {"max_retries": -1},
    {"max_retries": 1.5},
    {"max_retries": True},
    {"max_awaiting_retries": -2},
    {"timeout": 0},
    {"timeout": -1},
    {"timeout": "5"},
    {"timeout": math.inf},
    {"timeout": math.nan},
    {"timeout": True},
    {"retry_interval": -0.1},
    {"retry_interval_awaiting": 0},
    {"auto_retry": 1},
    {"continue_on_permanent_failure": "yes"},
    {"thread": None},
    {"skip_on_permanent_failure": 3},
    {"name": ""},
    {"name": "a:b"},
    {"name": 7},
    {"bogus": 1},
    {1: True},
], ids=repr)
def test_invalid_step_options_raise_invalid_data(options):
    """Each bad step option value or unknown key raises StepworkError(invalid_data)."""
    with pytest.raises(StepworkError) as info:
        parse_step_options("s", options)
    assert info.value.type == "invalid_data"


def test_unknown_camel_case_step_option_suggests_the_snake_case_name():
    """A Medusa-style camelCase key is refused with a 'Did you mean' hint."""
    with pytest.raises(StepworkError, match=r'Unknown step option "maxRetries".*Did you mean "max_retries"\?'):
        parse_step_options("s", {"maxRetries": 2})


def test_error_message_names_the_step_and_option():
    """A bad option value names the option and the step."""
    with pytest.raises(StepworkError, match=r'Option "timeout" of step "pay" must be > 0 seconds'):
        parse_step_options("pay", {"timeout": 0})


@pytest.mark.parametrize("config", [
    42,
    {"store": True},
    {"name": ""},
    {"name": "a:b"},
    "a:b",
    {"name": "w", "bogus": 1},
    {"name": "w", "timeout": 0},
    {"name": "w", "timeout": "1"},
    {"name": "w", "retention_time": -1},
    {"name": "w", "store": "yes"},
    {"name": "w", "idempotent": 1},
    {"name": "w", "schedule": 5},
], ids=repr)
def test_invalid_workflow_options_raise_invalid_data(config):
    """Each bad workflow name/option raises StepworkError(invalid_data)."""
    with pytest.raises(StepworkError) as info:
        parse_workflow_options(config)
    assert info.value.type == "invalid_data"


def test_workflow_options_parse():
    """A name string or a mapping parses; timedelta becomes seconds; a schedule is normalized."""
    assert parse_workflow_options("w").name == "w"
    o = parse_workflow_options({"name": "w", "retention_time": timedelta(hours=1), "timeout": 2,
                                "schedule": {"cron": "* * * * *"}, "idempotent": True, "store": False})
    assert (o.retention_time, o.timeout, o.schedule, o.idempotent, o.store) == (
        3600.0, 2.0, {"cron": "* * * * *", "concurrency": "forbid"}, True, False)
    with pytest.raises(StepworkError, match='Did you mean "retention_time"'):
        parse_workflow_options({"name": "w", "retentionTime": 1})


def test_plan_is_built_from_options_directly(wf_name):
    """Plan(options, stages) works with parsed options and keeps them."""
    wo = parse_workflow_options(wf_name)
    plan = Plan(wo, [[parse_step_options("x", {"max_retries": 1})]])
    assert plan.options is wo
    assert plan.steps[0].options.max_retries == 1
    assert plan.index_by_name == {"x": 0}
