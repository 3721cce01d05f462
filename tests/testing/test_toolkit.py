"""Each helper of ``stepwork.testing`` used on the brand example's workflows, as its users would.

The brand services (store, audit log, CMS, mailer) are registered fresh in each test's engine
container, so the example's workflows run against them; the few workflows defined here reuse the
example's steps with other options (an hour-long retry interval, a deadline, reminders...).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from examples.brand.durable import (
    LaunchBrandInput,
    import_brand_catalog_workflow,
    launch_brand_workflow,
    register_brand_workflow,
    wait_for_legal_approval_step,
)
from examples.brand.steps import (
    CreateBrandInput,
    create_brand_step,
    notify_brand_team_step,
    publish_brands_step,
)
from examples.brand.store import AuditLog, Brand, BrandStore, FakeCms, Mailer
from examples.brand.workflows import (
    CreateBrandsInput,
    create_brand_and_publish_workflow,
    create_brand_workflow,
    create_brands_with_audit_workflow,
    replace_brand_workflow,
)
from stepwork import (
    Container,
    Ref,
    StepContext,
    StepResponse,
    StepworkError,
    WorkflowEngine,
    WorkflowResponse,
    create_step,
    create_workflow,
    transform,
    workflow,
)
from stepwork.engine.registry import unregister_workflow
from stepwork.testing import (
    FakeClock,
    InjectedStepFailure,
    Recorder,
    SimulatedCrash,
    crash_after,
    fail_step,
    override_steps,
    recording,
    timeline,
)

# -- the brand services, fresh in every test's engine -------------------------------------------------


@dataclass
class Services:
    """The brand application's services, registered in the engine's container."""

    container: Container
    store: BrandStore
    audit: AuditLog
    cms: FakeCms
    mailer: Mailer


def _register(container: Container) -> Services:
    services = Services(container, BrandStore(), AuditLog(), FakeCms(), Mailer())
    for name, value in (("brand_store", services.store), ("audit_log", services.audit), ("cms", services.cms),
                        ("mailer", services.mailer)):
        container.register(name, value)
    return services


@pytest.fixture
def brand(stepwork_engine: WorkflowEngine) -> Services:
    """The brand services, registered in ``stepwork_engine.container``."""
    return _register(stepwork_engine.container)


def _elapsed_under_a_second(started: float) -> None:
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"took {elapsed:.2f} s of real time"


def _as_list(brand: Brand) -> list[Brand]:
    return [brand]


def _approval_request(values: dict[str, Any]) -> dict[str, Any]:
    return {"to": values["input"]["legal_contact"], "brand": values["brand"]}


def _brand_input(values: dict[str, Any]) -> CreateBrandInput:
    return CreateBrandInput(name=values["name"])


# -- workflows made of the example's steps, with other options ----------------------------------------


@workflow({"name": "toolkit-publish-hourly", "retention_time": 3600})
def publish_hourly_workflow(input: Ref[CreateBrandInput]) -> WorkflowResponse[dict[str, Any]]:
    """create-brand-and-publish, with publish-brands retried every hour instead of at once."""
    brand = create_brand_step(input)
    pages = publish_brands_step(transform(brand, _as_list)).config(retry_interval=3600)
    return WorkflowResponse({"brand": brand, "pages": pages})


@workflow("toolkit-publish-or-skip")
def publish_or_skip_workflow(input: Ref[CreateBrandInput]) -> WorkflowResponse[dict[str, Any]]:
    """When publishing fails for good, the brand is kept and the e-mail is skipped."""
    brand = create_brand_step(input)
    pages = publish_brands_step(transform(brand, _as_list)).config(skip_on_permanent_failure=True)
    email = notify_brand_team_step({"to": "team@example.test", "brands": transform(brand, _as_list)})
    return WorkflowResponse({"brand": brand, "pages": pages, "email": email})


def _launch(name: str, **wait_options: Any) -> Any:
    """launch-brand with other options on its wait-for-legal-approval step."""

    def composer(input: Ref[dict[str, Any]]) -> WorkflowResponse[dict[str, Any]]:
        brand = create_brand_step(transform(input, _brand_input))
        approval = wait_for_legal_approval_step(transform({"input": input, "brand": brand}, _approval_request)) \
            .config(**wait_options)
        pages = publish_brands_step(transform(brand, _as_list))
        return WorkflowResponse({"brand": brand, "approval": approval, "pages": pages})
    return create_workflow({"name": name, "retention_time": 3600}, composer)


launch_within_a_day_workflow = _launch("toolkit-launch-within-a-day", timeout=86_400)
launch_with_reminders_workflow = _launch("toolkit-launch-with-reminders", retry_interval_awaiting=3600,
                                         max_awaiting_retries=3)

APPROVAL = {"approved_by": "legal@example.test", "reference": "LGL-1"}
LAUNCH = LaunchBrandInput(name="Stark Industries", legal_contact="legal@example.test")


# == override_steps ======================================================================================


async def test_an_override_keeps_the_step_name_and_options(stepwork_engine: WorkflowEngine, brand: Services) -> None:
    """The replacement runs under the step's name and with its max_retries (three attempts)."""
    seen: list[tuple[str, int]] = []

    def cms_down(brands: list[Brand], ctx: StepContext) -> dict[str, str]:
        seen.append((ctx.step_name, ctx.attempt))
        raise ConnectionError("CMS down (fake)")

    with override_steps(create_brand_and_publish_workflow, {"publish-brands": cms_down}):
        result = await create_brand_and_publish_workflow(brand.container).run({"name": "Hooli"}, throw_on_error=False)
    assert seen == [("publish-brands", 1), ("publish-brands", 2), ("publish-brands", 3)]
    assert result.transaction.state == "reverted"
    assert [(e.action, e.error["message"]) for e in result.errors] == [("publish-brands", "CMS down (fake)")]
    assert timeline(result).step("publish-brands").attempts == 3
    assert brand.cms.calls == 0 and brand.store.list() == []


async def test_an_override_keeps_the_step_compensation(stepwork_engine: WorkflowEngine, brand: Services) -> None:
    """A fake create-brand is still undone by the real compensation when a later step fails."""

    def fake_create(data: CreateBrandInput, ctx: StepContext) -> StepResponse[Brand, str]:
        created = brand.store.create(f"Fake {data['name']}")
        return StepResponse(created, created["id"])

    brand.cms.available = False
    with override_steps(create_brand_and_publish_workflow, {"create-brand": fake_create}):
        result = await create_brand_and_publish_workflow(brand.container).run({"name": "Acme"}, throw_on_error=False)
    t = timeline(result)
    assert t.step("create-brand").output == {"id": "brand_01", "name": "Fake Acme"}
    assert t.compensated == ["publish-brands", "create-brand"]
    assert brand.store.list() == []  # undo_create_brand deleted the fake brand


async def test_overrides_may_be_coroutines_or_take_only_the_input(stepwork_engine: WorkflowEngine,
                                                                  brand: Services) -> None:
    """An async replacement and a one-argument replacement both work, like any invoke function."""

    async def fake_publish(brands: list[Brand]) -> dict[str, str]:
        return {b["id"]: f"https://fake.test/{b['id']}" for b in brands}

    with override_steps(create_brand_and_publish_workflow, {"publish-brands": fake_publish,
                                                            "create-brand": lambda data: {"id": "b1", **data}}):
        result = await create_brand_and_publish_workflow(brand.container).run({"name": "Acme"})
    assert result.result == {"brand": {"id": "b1", "name": "Acme"}, "pages": {"b1": "https://fake.test/b1"}}
    assert brand.store.list() == [] and brand.cms.pages == {}


async def test_a_replacement_step_replaces_the_compensation_too(stepwork_engine: WorkflowEngine,
                                                                brand: Services) -> None:
    """Given a step (invoke and compensation) as the override, both replace the original's; the
    step keeps its name."""
    undone: list[Any] = []
    fake: Any = create_step("fake-create-brand", lambda data: {"id": "fake_1", **data},
                            lambda value: undone.append(value))
    brand.cms.available = False
    with override_steps(create_brand_and_publish_workflow, {"create-brand": fake}):
        result = await create_brand_and_publish_workflow(brand.container).run({"name": "Acme"}, throw_on_error=False)
    assert [e.action for e in result.errors] == ["publish-brands"]
    assert timeline(result).compensated == ["publish-brands", "create-brand"]
    assert undone == [{"id": "fake_1", "name": "Acme"}]


async def test_overrides_end_with_the_block(stepwork_engine: WorkflowEngine, brand: Services) -> None:
    """A run started after the block uses the real step again."""
    with override_steps(create_brand_workflow, {"create-brand": lambda data: {"id": "fake", **data}}):
        faked = await create_brand_workflow(brand.container).run({"name": "Acme"})
    real = await create_brand_workflow(brand.container).run({"name": "Acme"})
    assert faked.result == {"id": "fake", "name": "Acme"}
    assert real.result == {"id": "brand_01", "name": "Acme"}


async def test_overrides_apply_to_nested_workflows(stepwork_engine: WorkflowEngine, brand: Services) -> None:
    """Overriding a step of create-brand changes it where replace-brand runs create-brand nested; the
    nested delete-brand is then reverted: the old brand is back."""
    acme = brand.store.create("Acme")

    def name_taken(data: CreateBrandInput) -> Brand:
        raise StepworkError(StepworkError.Types.DUPLICATE_ERROR, f'A brand named "{data["name"]}" already exists.')

    with override_steps(create_brand_workflow, {"create-brand": name_taken}):
        result = await replace_brand_workflow(brand.container).run({"brand_id": acme["id"], "new_name": "Acme 2"},
                                                                   throw_on_error=False)
    t = timeline(result)
    assert result.transaction.state == "reverted"
    assert t.failed == ["create-brand-basic-as-step"]
    assert t.compensated == ["create-brand-basic-as-step", "delete-brand-basic-as-step"]
    assert brand.store.list() == [acme]


async def test_a_run_started_in_the_block_keeps_its_overrides_when_completed_later(
        stepwork_engine: WorkflowEngine, brand: Services) -> None:
    """SPEC §11: the changes apply to runs started inside the block; a run started there and completed
    from outside after the block still uses the fake publish."""
    with override_steps(launch_brand_workflow, {"publish-brands": lambda brands: {"fake": "page"}}):
        first = await launch_brand_workflow(brand.container).run(LAUNCH, transaction_id="launch-1")
    assert first.transaction.state == "invoking"
    done = await stepwork_engine.set_step_success("launch-brand:launch-1:wait-for-legal-approval:invoke", APPROVAL)
    assert done.result["pages"] == {"fake": "page"}
    assert brand.cms.calls == 0


# == fail_step ===========================================================================================


async def test_failing_chosen_attempts_makes_the_step_retry(stepwork_engine: WorkflowEngine, brand: Services) -> None:
    """Attempts 1 and 2 fail, the third (the real publish) succeeds: the workflow is done."""
    with fail_step(create_brand_and_publish_workflow, "publish-brands", attempts=[1, 2]):
        result = await create_brand_and_publish_workflow(brand.container).run({"name": "Acme"})
    assert result.transaction.state == "done"
    assert timeline(result).step("publish-brands").attempts == 3
    assert brand.cms.calls == 1
    assert brand.cms.pages == {"brand_01": "https://cms.example.test/brands/brand_01"}


async def test_failing_every_attempt_compensates(stepwork_engine: WorkflowEngine, brand: Services) -> None:
    """Without attempts, every attempt fails with InjectedStepFailure; the brand is deleted again."""
    with fail_step(create_brand_and_publish_workflow, "publish-brands"):
        result = await create_brand_and_publish_workflow(brand.container).run({"name": "Acme"}, throw_on_error=False)
    t = timeline(result)
    assert result.transaction.state == "reverted"
    assert t.failed == ["publish-brands"] and t.step("publish-brands").attempts == 3
    error = t.step("publish-brands").error
    assert error is not None and error["name"] == "InjectedStepFailure"
    assert error["message"] == 'fail_step: the invoke of step "publish-brands" failed on attempt 3'
    assert brand.store.list() == [] and brand.cms.calls == 0


async def test_failing_with_a_chosen_error(stepwork_engine: WorkflowEngine, brand: Services) -> None:
    """``error=`` is what the step raises; with throw_on_error it is raised to the caller."""
    with fail_step(create_brand_and_publish_workflow, "publish-brands", error=ConnectionError("HTTP 503")), \
            pytest.raises(ConnectionError, match="HTTP 503"):
        await create_brand_and_publish_workflow(brand.container).run({"name": "Acme"})
    assert brand.store.list() == []


async def test_failing_a_compensation_ends_the_run_failed(stepwork_engine: WorkflowEngine, brand: Services) -> None:
    """compensation=True: create-brand's compensation fails, so the run ends ``failed`` with a
    ``compensate`` error, and the brand stays."""
    brand.cms.available = False
    with fail_step(create_brand_and_publish_workflow, "create-brand", compensation=True):
        result = await create_brand_and_publish_workflow(brand.container).run({"name": "Acme"}, throw_on_error=False)
    assert result.transaction.state == "failed"
    errors = [(e["action"], e["handler_type"]) for e in result.transaction.context["errors"]]
    assert errors == [("publish-brands", "invoke"), ("create-brand", "compensate")]
    assert [(e.action, e.handler_type) for e in result.errors] == [("publish-brands", "invoke")]
    step = timeline(result).step("create-brand")
    assert step.compensate_state == "failed"
    assert step.compensation_error is not None and step.compensation_error["name"] == "InjectedStepFailure"
    assert [b["name"] for b in brand.store.list()] == ["Acme"]


async def test_a_compensation_failing_once_is_retried(stepwork_engine: WorkflowEngine, brand: Services) -> None:
    """publish-brands has max_retries=2, for its compensation too: failing compensation attempt 1
    only, the run still ends reverted."""
    brand.cms.available = False
    with fail_step(create_brand_and_publish_workflow, "publish-brands", compensation=True, attempts=[1]):
        result = await create_brand_and_publish_workflow(brand.container).run({"name": "Acme"}, throw_on_error=False)
    assert result.transaction.state == "reverted"
    assert timeline(result).compensated == ["publish-brands", "create-brand"]
    assert brand.store.list() == []


async def test_a_timed_out_step_ends_timeout_and_is_not_retried(stepwork_engine: WorkflowEngine,
                                                                brand: Services) -> None:
    """timeout=True: the step ends ``timeout`` with a StepTimeoutError at its first attempt
    (a timeout is a permanent failure), and the run is compensated."""
    with fail_step(create_brand_and_publish_workflow, "publish-brands", timeout=True):
        result = await create_brand_and_publish_workflow(brand.container).run({"name": "Acme"}, throw_on_error=False)
    step = timeline(result).step("publish-brands")
    assert result.transaction.state == "reverted"
    assert step.invoke_state == "timeout"
    assert step.error is not None and step.error["name"] == "StepTimeoutError"
    assert step.attempts == 1
    assert timeline(result).failed == ["publish-brands"]
    assert brand.store.list() == [] and brand.cms.calls == 0


# == crash_after =========================================================================================


async def test_a_crash_is_recovered_once_the_lease_expires(stepwork_engine: WorkflowEngine,
                                                           stepwork_clock: FakeClock, brand: Services) -> None:
    """register-brand crashes after create-brand's checkpoint, before its code ran; once the lease
    has expired, the engine runs the step again and finishes: one brand."""
    with crash_after(register_brand_workflow, "create-brand"), pytest.raises(SimulatedCrash):
        await register_brand_workflow(brand.container).run({"name": "Wayne"}, transaction_id="register-1")
    [row] = await stepwork_engine.list_workflow_executions({"transaction_id": "register-1"})
    assert row.state == "invoking" and brand.store.list() == []

    await stepwork_clock.advance(stepwork_engine.lease_ttl - 1)
    [row] = await stepwork_engine.list_workflow_executions({"transaction_id": "register-1"})
    assert row.state == "invoking"  # its lease has not expired yet

    await stepwork_clock.advance(2)
    [row] = await stepwork_engine.list_workflow_executions({"transaction_id": "register-1"})
    assert row.state == "done"
    assert brand.store.list() == [{"id": "brand_01", "name": "Wayne"}]
    assert timeline(row).step("create-brand").output == {"id": "brand_01", "name": "Wayne"}


async def test_completed_steps_are_not_run_again_after_a_crash(stepwork_engine: WorkflowEngine,
                                                               stepwork_clock: FakeClock, tmp_path: Path) -> None:
    """import-brand-catalog crashes right after index-catalog's checkpoint: after recovery the
    steps before it are not run again (one line each in the steps' invocation log)."""
    catalog = {"brand": "Acme", "workdir": str(tmp_path)}
    with crash_after(import_brand_catalog_workflow, "index-catalog"), pytest.raises(SimulatedCrash):
        await stepwork_engine.run(import_brand_catalog_workflow, catalog, transaction_id="catalog-1")
    await stepwork_clock.advance(stepwork_engine.lease_ttl + 1)
    [row] = await stepwork_engine.list_workflow_executions({"transaction_id": "catalog-1"})
    assert row.state == "done"
    assert timeline(row).step("index-catalog").output == "indexed 4 products"
    log = [json.loads(line) for line in (tmp_path / "invocations.log").read_text().splitlines()]
    assert [line["step"] for line in log] == ["fetch-catalog", "import-products", "index-catalog"]


async def test_a_crash_while_completing_a_waiting_step(stepwork_engine: WorkflowEngine, stepwork_clock: FakeClock,
                                                       brand: Services) -> None:
    """launch-brand: the legal approval arrives and the process crashes at publish-brands; the
    recovered run publishes without creating the brand or asking legal again."""
    await launch_brand_workflow(brand.container).run(LAUNCH, transaction_id="launch-1")
    with crash_after(launch_brand_workflow, "publish-brands"), pytest.raises(SimulatedCrash):
        await stepwork_engine.set_step_success("launch-brand:launch-1:wait-for-legal-approval:invoke", APPROVAL)
    await stepwork_clock.advance(stepwork_engine.lease_ttl + 1)
    [row] = await stepwork_engine.list_workflow_executions({"transaction_id": "launch-1"})
    assert row.state == "done"
    assert timeline(row).invoked == ["create-brand", "wait-for-legal-approval", "publish-brands"]
    assert len(brand.store.list()) == 1 and len(brand.mailer.sent) == 1 and brand.cms.calls == 1


async def test_a_crash_in_a_fresh_engine_is_recovered_when_time_moves_in_steps() -> None:
    """The lease of a crashed run expires lease_ttl after the crash, however the clock gets there:
    here an engine started in the test, and the clock advanced twice."""
    clock = FakeClock()
    container = Container()
    services = _register(container)
    async with WorkflowEngine("sqlite://", clock=clock, container=container, poll_interval=3600) as engine:
        with crash_after(register_brand_workflow, "create-brand"), pytest.raises(SimulatedCrash):
            await register_brand_workflow(container).run({"name": "Wayne"}, transaction_id="register-1")
        await clock.advance(engine.lease_ttl - 1)
        await clock.advance(2)
        [row] = await engine.list_workflow_executions({"transaction_id": "register-1"})
        assert row.state == "done"
        assert [b["name"] for b in services.store.list()] == ["Wayne"]


# == FakeClock ===========================================================================================


async def test_an_hour_long_retry_interval_in_no_time(stepwork_engine: WorkflowEngine, stepwork_clock: FakeClock,
                                                      brand: Services) -> None:
    """publish-brands retried every hour: the CMS is down at first; an hour later (of fake time)
    the retry publishes. Well under a second of real time."""
    started = time.monotonic()
    brand.cms.available = False
    first = await publish_hourly_workflow(brand.container).run({"name": "Acme"}, transaction_id="hourly-1")
    assert first.transaction.state == "invoking"
    brand.cms.available = True
    await stepwork_clock.advance(3599)
    assert brand.cms.calls == 1  # not yet
    await stepwork_clock.advance(1)
    [row] = await stepwork_engine.list_workflow_executions({"transaction_id": "hourly-1"})
    assert row.state == "done"
    assert brand.cms.calls == 2 and "brand_01" in brand.cms.pages
    _elapsed_under_a_second(started)


async def test_failed_attempts_with_hourly_retries(stepwork_engine: WorkflowEngine, stepwork_clock: FakeClock,
                                                   brand: Services) -> None:
    """fail_step and a retry interval together: attempts 1 and 2 fail, two hours later the third
    succeeds (the retries fire inside the block, where the clock is advanced)."""
    started = time.monotonic()
    with fail_step(publish_hourly_workflow, "publish-brands", attempts=[1, 2]):
        await publish_hourly_workflow(brand.container).run({"name": "Acme"}, transaction_id="hourly-2")
        await stepwork_clock.advance(3600)
        [row] = await stepwork_engine.list_workflow_executions({"transaction_id": "hourly-2"})
        assert row.state == "invoking"
        await stepwork_clock.advance(3600)
    [row] = await stepwork_engine.list_workflow_executions({"transaction_id": "hourly-2"})
    assert row.state == "done"
    assert timeline(row).step("publish-brands").attempts == 3
    _elapsed_under_a_second(started)


@pytest.fixture
def scheduled(wf_name: str) -> Iterator[Callable[[Any], list[str]]]:
    """Define a scheduled workflow (named after the test) whose runs record their tick; it is
    unregistered after the test, so that later engines do not run it."""

    def define(schedule: Any) -> list[str]:
        ticks: list[str] = []
        report: Any = create_step("daily-brand-report", lambda tick: ticks.append(tick["scheduled_for"]))
        create_workflow({"name": wf_name, "retention_time": 30 * 86_400, "schedule": schedule},
                        lambda tick: report(tick))
        return ticks

    yield define
    unregister_workflow(wf_name)


async def test_a_daily_schedule_in_no_time(stepwork_engine: WorkflowEngine, stepwork_clock: FakeClock,
                                           scheduled: Callable[[Any], list[str]], wf_name: str) -> None:
    """A schedule of once a day ("0 0 * * *"): three days pass, three runs, one per midnight."""
    started = time.monotonic()
    ticks = scheduled("0 0 * * *")
    await stepwork_clock.advance(0)  # the engine notices the new scheduled workflow
    for _ in range(3):
        await stepwork_clock.advance(86_400)
    assert ticks == ["2027-01-16T00:00:00.000Z", "2027-01-17T00:00:00.000Z", "2027-01-18T00:00:00.000Z"]
    rows = await stepwork_engine.list_workflow_executions({"workflow_id": wf_name})
    assert len(rows) == 3 and {r.state for r in rows} == {"done"}
    _elapsed_under_a_second(started)


async def test_a_daily_schedule_stops_after_its_number_of_executions(
        stepwork_engine: WorkflowEngine, stepwork_clock: FakeClock, scheduled: Callable[[Any], list[str]]) -> None:
    """``{"cron": "0 0 * * *", "number_of_executions": 3}``: five days pass, three runs."""
    started = time.monotonic()
    ticks = scheduled({"cron": "0 0 * * *", "number_of_executions": 3})
    await stepwork_clock.advance(0)
    for _ in range(5):
        await stepwork_clock.advance(86_400)
    assert ticks == ["2027-01-16T00:00:00.000Z", "2027-01-17T00:00:00.000Z", "2027-01-18T00:00:00.000Z"]
    _elapsed_under_a_second(started)


async def test_a_schedule_defined_in_the_test_fires_at_its_first_tick(
        stepwork_engine: WorkflowEngine, stepwork_clock: FakeClock, scheduled: Callable[[Any], list[str]]) -> None:
    """A scheduled workflow defined after the engine started: advancing one day reaches the next
    midnight, which fires (the clock lets every timer that became due fire)."""
    ticks = scheduled("0 0 * * *")
    await stepwork_clock.advance(86_400)
    assert ticks == ["2027-01-16T00:00:00.000Z"]


async def test_the_clock_never_goes_back(stepwork_clock: FakeClock) -> None:
    """Advancing backwards (or by something that is not a number) raises; the time is unchanged."""
    now = stepwork_clock.time()
    for bad in (-1, -0.001, float("nan"), "60", True):
        with pytest.raises(StepworkError) as err:
            await stepwork_clock.advance(bad)  # type: ignore[arg-type]
        assert err.value.type == "invalid_argument"
    assert stepwork_clock.time() == now
    await stepwork_clock.advance(0)
    await stepwork_clock.advance(1.5)
    assert stepwork_clock.time() == now + 1.5


async def test_retention_then_cleanup(stepwork_engine: WorkflowEngine, stepwork_clock: FakeClock,
                                      brand: Services) -> None:
    """register-brand is kept an hour after it finished: cleanup keeps it before, removes it after."""
    await register_brand_workflow(brand.container).run({"name": "Wayne"}, transaction_id="kept-1")
    await stepwork_clock.advance(3599)
    await stepwork_engine.cleanup_expired_executions()
    assert len(await stepwork_engine.list_workflow_executions({"transaction_id": "kept-1"})) == 1
    await stepwork_clock.advance(2)
    assert await stepwork_engine.cleanup_expired_executions() >= 1
    assert await stepwork_engine.list_workflow_executions({"transaction_id": "kept-1"}) == []


async def test_awaiting_retries_fire_when_the_clock_moves(stepwork_engine: WorkflowEngine, stepwork_clock: FakeClock,
                                                          brand: Services) -> None:
    """The approval request is sent again every hour while no answer came, three times in all."""
    started = time.monotonic()
    await launch_with_reminders_workflow(brand.container).run(LAUNCH, transaction_id="remind-1")
    assert len(brand.mailer.sent) == 1
    await stepwork_clock.advance(3600)
    assert len(brand.mailer.sent) == 2
    await stepwork_clock.advance(3600)
    await stepwork_clock.advance(3600)
    assert len(brand.mailer.sent) == 3  # max_awaiting_retries counts every invocation
    done = await stepwork_engine.set_step_success(
        "toolkit-launch-with-reminders:remind-1:wait-for-legal-approval:invoke", APPROVAL)
    assert done.transaction.state == "done"
    assert timeline(done).step("wait-for-legal-approval").attempts == 3
    _elapsed_under_a_second(started)


async def test_an_async_step_times_out_when_the_clock_passes_its_deadline(
        stepwork_engine: WorkflowEngine, stepwork_clock: FakeClock, brand: Services) -> None:
    """No approval within a day: the waiting step times out and the brand is deleted again."""
    started = time.monotonic()
    await launch_within_a_day_workflow(brand.container).run(LAUNCH, transaction_id="deadline-1")
    await stepwork_clock.advance(86_399)
    [row] = await stepwork_engine.list_workflow_executions({"transaction_id": "deadline-1"})
    assert row.state == "invoking"
    await stepwork_clock.advance(1)
    [row] = await stepwork_engine.list_workflow_executions({"transaction_id": "deadline-1"})
    t = timeline(row)
    assert row.state == "reverted"
    assert t.step("wait-for-legal-approval").invoke_state == "timeout"
    error = t.step("wait-for-legal-approval").error
    assert error is not None and error["name"] == "StepTimeoutError"
    assert t.compensated == ["create-brand"]  # the waiting step has no compensation
    assert brand.store.list() == [] and brand.cms.calls == 0
    _elapsed_under_a_second(started)


# == timeline ============================================================================================


async def test_the_timeline_of_a_result_and_of_its_stored_execution_agree(stepwork_engine: WorkflowEngine,
                                                                          brand: Services) -> None:
    """register-brand is stored: the timeline read back from list_workflow_executions says what the
    result's timeline says."""
    result = await register_brand_workflow(brand.container).run({"name": "Wayne"}, transaction_id="stored-1")
    [row] = await stepwork_engine.list_workflow_executions({"transaction_id": "stored-1"})
    live, stored = timeline(result), timeline(row)
    assert live.invoked == stored.invoked == ["create-brand"]
    assert stored.step("create-brand").input == {"name": "Wayne"}
    assert stored.step("create-brand").output == result.result == {"id": "brand_01", "name": "Wayne"}
    assert stored.step("create-brand").attempts == 1
    assert stored.step("create-brand").error is None


async def test_compensation_order_with_parallel_steps(stepwork_engine: WorkflowEngine, brand: Services) -> None:
    """create-brands-with-audit, the e-mail failing: the parallel audit and publish steps are undone
    (in definition order) before the brands they depend on, newest first."""
    payload = CreateBrandsInput(names=["globex", "initech"], requested_by="ana@example.test", notify=True)
    with fail_step(create_brands_with_audit_workflow, "notify-brand-team"):
        result = await create_brands_with_audit_workflow(brand.container).run(payload, throw_on_error=False)
    t = timeline(result)
    assert t.invoked == ["create-brands", "brands_created", "get-brands_created-result", "record-audit-entry",
                         "publish-brands", "notify-brand-team"]
    assert t.failed == ["notify-brand-team"]
    assert t.compensated[:2] == ["record-audit-entry", "publish-brands"]
    assert t.compensated[-1] == "create-brands"
    assert "notify-brand-team" not in t.compensated  # no compensation: mail cannot be recalled
    assert brand.store.list() == [] and brand.audit.entries == [] and brand.cms.pages == {}


async def test_a_false_condition_skips_the_steps_inside(stepwork_engine: WorkflowEngine, brand: Services) -> None:
    """Without ``notify`` the when-branch is skipped: .skipped names its step, .invoked does not."""
    result = await create_brands_with_audit_workflow(brand.container).run(
        {"names": ["globex"], "requested_by": "ana@example.test"})
    t = timeline(result)
    assert t.skipped == ["notify-brand-team"]
    assert "notify-brand-team" not in t.invoked
    assert t.step("notify-brand-team").output is None
    assert brand.mailer.sent == []


async def test_skip_on_permanent_failure_skips_what_follows(stepwork_engine: WorkflowEngine, brand: Services) -> None:
    """publish-brands failing for good with skip_on_permanent_failure: the run is done, the brand
    kept, the e-mail skipped."""
    with fail_step(publish_or_skip_workflow, "publish-brands"):
        result = await publish_or_skip_workflow(brand.container).run({"name": "Acme"})
    t = timeline(result)
    assert result.transaction.state == "done"
    assert t.failed == ["publish-brands"] and t.step("publish-brands").attempts == 3
    assert t.skipped == ["notify-brand-team"]
    assert t.compensated == []
    assert [b["name"] for b in brand.store.list()] == ["Acme"] and brand.mailer.sent == []


async def test_a_step_view_has_input_output_attempts_and_error(stepwork_engine: WorkflowEngine,
                                                               brand: Services) -> None:
    """.step(name): the input a step received, its output, how many attempts, and its error."""
    with fail_step(create_brand_and_publish_workflow, "publish-brands", attempts=[1]):
        ok = await create_brand_and_publish_workflow(brand.container).run({"name": "Acme"})
    created = timeline(ok).step("create-brand")
    published = timeline(ok).step("publish-brands")
    assert created.input == {"name": "Acme"} and created.output == {"id": "brand_01", "name": "Acme"}
    assert created.attempts == 1 and created.error is None
    assert published.input == [{"id": "brand_01", "name": "Acme"}]
    assert published.output == {"brand_01": "https://cms.example.test/brands/brand_01"}
    assert published.attempts == 2 and published.error is None

    brand.cms.available = False
    failed = await create_brand_and_publish_workflow(brand.container).run({"name": "Globex"}, throw_on_error=False)
    step = timeline(failed).step("publish-brands")
    assert step.output is None and step.attempts == 3
    assert step.error is not None
    assert (step.error["name"], step.error["message"]) == ("ConnectionError", "CMS unavailable (HTTP 503)")
    assert timeline(failed).step("create-brand").compensation_input == "brand_02"


async def test_asking_for_an_unknown_step_lists_the_steps(stepwork_engine: WorkflowEngine, brand: Services) -> None:
    """.step() with a name the run does not have raises StepworkError naming it and listing the steps."""
    result = await create_brand_and_publish_workflow(brand.container).run({"name": "Acme"})
    with pytest.raises(StepworkError) as err:
        timeline(result).step("publish")
    assert '"publish"' in str(err.value)
    assert "create-brand, publish-brands" in str(err.value)


def test_attempts_are_known_without_recording() -> None:
    """A plain in-memory run outside any recording: the timeline still counts the invoke attempts of
    a step that failed and was compensated (three: max_retries=2)."""
    container = Container()
    _register(container)
    with fail_step(create_brand_and_publish_workflow, "publish-brands"):
        result = create_brand_and_publish_workflow.run_sync({"name": "Acme"}, container=container,
                                                            throw_on_error=False)
    step = timeline(result).step("publish-brands")
    assert step.input is None  # inputs are known only for recorded runs
    assert step.attempts == 3


def test_inputs_are_known_inside_a_recording() -> None:
    """recording() makes a plain run's inputs available to timeline (inside the block, or with the
    recorder passed explicitly after it)."""
    container = Container()
    _register(container)
    with recording() as recorder:
        result = create_brand_workflow.run_sync({"name": "Acme"}, container=container)
        assert timeline(result).step("create-brand").input == {"name": "Acme"}
    assert timeline(result, recorder=recorder).step("create-brand").input == {"name": "Acme"}
    assert timeline(result).step("create-brand").input is None
    assert timeline(result, recorder=Recorder()).step("create-brand").input is None


# == bad input ===========================================================================================

STEPS = ("create-brands, brands_created, get-brands_created-result, record-audit-entry, publish-brands, "
         "notify-brand-team")


@pytest.mark.parametrize("helper", [
    lambda wf: override_steps(wf, {"notify-team": lambda value: None}),
    lambda wf: override_steps(wf, {"create-brands": lambda value: [], "notify-team": lambda value: None}),
    lambda wf: fail_step(wf, "notify-team"),
    lambda wf: fail_step(wf, "notify-team", compensation=True),
    lambda wf: crash_after(wf, "notify-team"),
], ids=["override_steps", "override_steps-one-of-two", "fail_step", "fail_step-compensation", "crash_after"])
def test_an_unknown_step_name_raises_and_lists_the_steps(helper: Callable[[Any], Any]) -> None:
    """Entering the block with a step the workflow does not have raises StepworkError naming it and
    listing the workflow's steps; nothing stays changed."""
    with pytest.raises(StepworkError) as err, helper(create_brands_with_audit_workflow):
        pass
    assert '"notify-team"' in str(err.value)
    assert STEPS in str(err.value)
    assert '"create-brands-with-audit"' in str(err.value)
    result = create_brand_workflow.run_sync({"name": "Acme"}, container=_register(Container()).container)
    assert result.result == {"id": "brand_01", "name": "Acme"}


def test_other_bad_arguments_raise_stepwork_errors() -> None:
    """A replacement that is not callable, something that is not a workflow, and timeline() of
    something that is neither a result nor an execution."""
    with pytest.raises(StepworkError, match='override of step "create-brand" must be callable'), \
            override_steps(create_brand_workflow, {"create-brand": "not a function"}):  # type: ignore[dict-item]
        pass
    with pytest.raises(StepworkError, match="Expected a workflow"), \
            fail_step("create-brand", "create-brand"):  # type: ignore[arg-type]
        pass
    with pytest.raises(StepworkError, match="takes a WorkflowResult or a WorkflowExecution"):
        timeline({"steps": {}})  # type: ignore[arg-type]


def test_the_injected_failure_is_an_exception_and_the_crash_is_not() -> None:
    """InjectedStepFailure is an ordinary error (retried, compensated); SimulatedCrash is not an
    Exception, so no ``except Exception`` in the engine or in user code swallows it."""
    assert issubclass(InjectedStepFailure, Exception)
    assert issubclass(SimulatedCrash, BaseException) and not issubclass(SimulatedCrash, Exception)
