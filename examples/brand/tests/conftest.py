"""Fixtures of the brand application's tests.

The pytest plugin that comes with stepwork provides ``stepwork_engine`` (a started engine on an
in-memory store, its own container, a fake clock) and ``stepwork_clock``. The brand steps resolve
their services from the container they run with, so each test registers new ones in the engine's
container: every test starts with no brands, no pages and no e-mail.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from examples.brand.store import AuditLog, BrandStore, FakeCms, Mailer
from stepwork import Container, WorkflowEngine


@dataclass
class BrandServices:
    """The services a test's workflows run against, for the test to look at."""

    store: BrandStore
    audit_log: AuditLog
    cms: FakeCms
    mailer: Mailer


def register_services(container: Container) -> BrandServices:
    """Register new, empty brand services in ``container`` and return them."""
    services = BrandServices(BrandStore(), AuditLog(), FakeCms(), Mailer())
    container.register("brand_store", services.store)
    container.register("audit_log", services.audit_log)
    container.register("cms", services.cms)
    container.register("mailer", services.mailer)
    return services


@pytest.fixture
def services(stepwork_engine: WorkflowEngine) -> BrandServices:
    """New brand services in the test engine's container."""
    return register_services(stepwork_engine.container)
