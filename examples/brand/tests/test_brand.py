"""The brand workflows, tested with ``stepwork.testing``: no servers, no sleeping.

Each test gets a fresh engine (``stepwork_engine``), its fake clock (``stepwork_clock``) and fresh brand
services (``services``, from conftest.py). docs/testing.md walks through these tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from examples.brand.durable import CatalogInput, LaunchBrandInput, import_brand_catalog_workflow, launch_brand_workflow
from examples.brand.store import make_container
from examples.brand.tests.conftest import BrandServices
from examples.brand.workflows import create_brand_and_publish_workflow, create_brand_workflow, replace_brand_workflow
from stepwork import WorkflowEngine
from stepwork.testing import FakeClock, SimulatedCrash, crash_after, fail_step, override_steps, timeline


async def test_create_brand(stepwork_engine: WorkflowEngine, services: BrandServices) -> None:
    """create-brand stores the brand and returns it."""
    result = await create_brand_workflow(stepwork_engine.container).run({"name": "Acme"})
    assert result.result == {"id": "brand_01", "name": "Acme"}
    assert services.store.list() == [{"id": "brand_01", "name": "Acme"}]
    assert timeline(result).invoked == ["create-brand"]


async def test_a_failed_publish_rolls_the_brand_back(stepwork_engine: WorkflowEngine,
                                                     services: BrandServices) -> None:
    """The CMS is down: publish-brands fails after its three attempts and the new brand is deleted."""
    services.cms.available = False
    result = await create_brand_and_publish_workflow(stepwork_engine.container).run(
        {"name": "Hooli"}, throw_on_error=False)
    t = timeline(result)
    assert result.transaction.state == "reverted"
    assert t.failed == ["publish-brands"]
    assert t.step("publish-brands").attempts == 3
    assert t.compensated == ["publish-brands", "create-brand"]
    assert services.store.list() == []


async def test_a_flaky_cms_is_retried(stepwork_engine: WorkflowEngine, services: BrandServices) -> None:
    """The first two attempts to publish fail; the third succeeds and the run is done."""
    with fail_step(create_brand_and_publish_workflow, "publish-brands", attempts=[1, 2]):
        result = await create_brand_and_publish_workflow(stepwork_engine.container).run({"name": "Hooli"})
    assert result.transaction.state == "done"
    assert timeline(result).step("publish-brands").attempts == 3
    assert services.cms.pages == {"brand_01": "https://cms.example.test/brands/brand_01"}


async def test_publishing_without_the_cms(stepwork_engine: WorkflowEngine, services: BrandServices) -> None:
    """A fake publish-brands: the workflow's result is built from it, the CMS is never called."""

    def fake_publish(brands: list[dict[str, str]]) -> dict[str, str]:
        return {brand["id"]: "https://fake.test/" + brand["id"] for brand in brands}

    with override_steps(create_brand_and_publish_workflow, {"publish-brands": fake_publish}):
        result = await create_brand_and_publish_workflow(stepwork_engine.container).run({"name": "Hooli"})
    assert result.result["pages"] == {"brand_01": "https://fake.test/brand_01"}
    assert services.cms.calls == 0


async def test_legal_approval_completes_the_launch(stepwork_engine: WorkflowEngine,
                                                   services: BrandServices) -> None:
    """launch-brand waits for legal; the answer, given from outside, lets it publish the brand."""
    launch = LaunchBrandInput(name="Stark Industries", legal_contact="legal@example.test")
    first = await launch_brand_workflow(stepwork_engine.container).run(launch, transaction_id="launch-stark")
    assert first.transaction.state == "invoking"
    assert [mail["to"] for mail in services.mailer.sent] == ["legal@example.test"]

    approval = {"approved_by": "legal@example.test", "reference": "LGL-1041"}
    done = await stepwork_engine.set_step_success(
        "launch-brand:launch-stark:wait-for-legal-approval:invoke", approval)
    assert done.transaction.state == "done"
    assert timeline(done).step("wait-for-legal-approval").output == approval
    assert services.cms.pages == {"brand_01": "https://cms.example.test/brands/brand_01"}


async def test_a_crash_is_resumed(stepwork_engine: WorkflowEngine, stepwork_clock: FakeClock,
                                  tmp_path: Path) -> None:
    """The process "dies" as import-products starts; once its lease has expired the engine resumes
    the run: fetch-catalog, already done, is not run again."""
    catalog = CatalogInput(brand="Acme", workdir=str(tmp_path))
    with crash_after(import_brand_catalog_workflow, "import-products"), pytest.raises(SimulatedCrash):
        await stepwork_engine.run(import_brand_catalog_workflow, catalog, transaction_id="catalog-1")

    await stepwork_clock.advance(stepwork_engine.lease_ttl + 1)
    [execution] = await stepwork_engine.list_workflow_executions({"transaction_id": "catalog-1"})
    assert execution.state == "done"
    assert timeline(execution).step("index-catalog").output == "indexed 4 products"
    log = (tmp_path / "invocations.log").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == ["fetch-catalog", "import-products", "index-catalog"]


def test_a_taken_name_restores_the_replaced_brand() -> None:
    """A plain test, no engine: replace-brand's nested create fails, the nested delete is undone."""
    container = make_container()
    acme = container.resolve("brand_store").create("Acme")
    container.resolve("brand_store").create("Globex")
    result = replace_brand_workflow(container).run_sync({"brand_id": acme["id"], "new_name": "Globex"},
                                                        throw_on_error=False)
    t = timeline(result)
    assert result.transaction.state == "reverted"
    assert t.compensated == ["create-brand-basic-as-step", "delete-brand-basic-as-step"]
    assert container.resolve("brand_store").get(acme["id"]) == acme
