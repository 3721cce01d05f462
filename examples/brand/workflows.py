"""The brand workflows.

- ``create-brand-basic`` and ``delete-brand-basic``: one step each, the seed example (``examples/shop`` has
  the complete application, whose workflows are ``create-brand`` and ``delete-brand``).
- ``create-brands-with-audit``: the composition tools together: ``transform``, ``parallelize``,
  ``when(...).then(...)`` and a hook.
- ``create-brand-and-publish``: creates a brand, then publishes it on the CMS; when the CMS is down
  the publish step fails after its retries and the brand is deleted again by compensation.
- ``replace-brand``: runs ``delete-brand-basic`` and ``create-brand-basic`` as nested workflows; when the
  new name is taken the nested ``delete-brand-basic`` is reverted, so the old brand comes back.

A composer runs once, when the module is imported: it records the steps into a static graph. The
values it handles are references (``Ref``), resolved at run time; compute with them through
``transform`` and branch with ``when``.
"""

from __future__ import annotations

import string
from typing import Any, NotRequired, TypedDict

from pydantic import BaseModel

from examples.brand.steps import (
    AuditEntryInput,
    CreateBrandInput,
    DeleteBrandInput,
    DeletedBrand,
    create_brand_step,
    create_brands_step,
    delete_brand_step,
    notify_brand_team_step,
    publish_brands_step,
    record_audit_entry_step,
)
from examples.brand.store import Brand
from stepwork import Ref, WorkflowResponse, create_hook, create_workflow, parallelize, transform, when, workflow

__all__ = [
    "BrandHandles",
    "CreateBrandsInput",
    "ReplaceBrandInput",
    "create_brand_and_publish_workflow",
    "create_brand_workflow",
    "create_brands_with_audit_workflow",
    "delete_brand_workflow",
    "replace_brand_workflow",
]


# -- create-brand (decorator form) and delete-brand (function form) -----------------------------


@workflow("create-brand-basic")
def create_brand_workflow(input: Ref[CreateBrandInput]) -> WorkflowResponse[Brand]:
    """Create one brand; the result is the brand."""
    brand = create_brand_step(input)
    return WorkflowResponse(brand)


def _delete_brand(input: Ref[DeleteBrandInput]) -> WorkflowResponse[DeletedBrand]:
    deleted = delete_brand_step(input)
    return WorkflowResponse(deleted)


delete_brand_workflow = create_workflow("delete-brand-basic", _delete_brand)
"""Delete one brand; the result is ``{id, object: "brand", deleted: True}``."""


# -- create-brands-with-audit: transform, hook, parallelize, when ------------------------------


class CreateBrandsInput(TypedDict):
    """Input of ``create-brands-with-audit``."""

    names: list[str]
    requested_by: str
    notify: NotRequired[bool]


class BrandHandles(BaseModel):
    """What a ``brands_created`` hook handler must return: a URL handle per brand id."""

    handles: dict[str, str]


def normalize_names(input: CreateBrandsInput) -> list[str]:
    """``["  globex ", "GLOBEX", "initech"]`` -> ``["Globex", "Initech"]``: trimmed, capitalized,
    without duplicates."""
    names: list[str] = []
    for raw in input["names"]:
        name = string.capwords(raw)
        if name and name.casefold() not in (n.casefold() for n in names):
            names.append(name)
    return names


def build_audit_entry(values: dict[str, Any]) -> AuditEntryInput:
    """The audit entry for the brands just created."""
    return AuditEntryInput(action="brands.created", actor=values["actor"],
                           brand_ids=[brand["id"] for brand in values["brands"]])


def wants_notification(input: CreateBrandsInput) -> bool:
    """The ``when`` condition: e-mail the team only if the caller asked for it."""
    return input.get("notify", False)


@workflow("create-brands-with-audit")
def create_brands_with_audit_workflow(input: Ref[CreateBrandsInput]) -> WorkflowResponse[dict[str, Any]]:
    """Create several brands, let the app extend the run through a hook, then audit and publish them
    concurrently, and e-mail the team if asked."""
    # transform: plain Python on the resolved input, at run time (at most once per run).
    names = transform(input, normalize_names)
    brands = create_brands_step(names)

    # A hook: a step that does nothing until the application registers a handler
    # (create_brands_with_audit_workflow.hooks.brands_created(handler)); its result is validated.
    brands_created = create_hook("brands_created", {"brands": brands, "actor": input.requested_by},
                                 result_validator=BrandHandles)
    handles = brands_created.get_result()

    # A dict mixing references is resolved as a whole; the transform turns it into the step's input.
    audit_input = transform({"brands": brands, "actor": input.requested_by}, build_audit_entry)

    # parallelize: both steps start together; the next step waits for both.
    audit_entry, pages = parallelize(record_audit_entry_step(audit_input), publish_brands_step(brands))

    # when: the condition is evaluated at run time; when false, the steps inside are skipped.
    email = when(input, wants_notification).then(
        lambda: notify_brand_team_step({"to": input.requested_by, "brands": brands}))

    return WorkflowResponse({"brands": brands, "audit_entry": audit_entry, "pages": pages, "email": email,
                             "handles": handles}, hooks=[brands_created])


# -- create-brand-and-publish: the rollback example ---------------------------------------------


@workflow("create-brand-and-publish")
def create_brand_and_publish_workflow(input: Ref[CreateBrandInput]) -> WorkflowResponse[dict[str, Any]]:
    """Create a brand, then publish its page. If publishing fails (after its retries), the workflow
    is compensated: the brand is deleted again."""
    brand = create_brand_step(input)
    pages = publish_brands_step(transform(brand, lambda b: [b]))
    return WorkflowResponse({"brand": brand, "pages": pages})


# -- replace-brand: nested workflows ------------------------------------------------------------


class ReplaceBrandInput(TypedDict):
    """Input of ``replace-brand``."""

    brand_id: str
    new_name: str


def _old_brand(input: ReplaceBrandInput) -> DeleteBrandInput:
    return DeleteBrandInput(id=input["brand_id"])


def _new_brand(input: ReplaceBrandInput) -> CreateBrandInput:
    return CreateBrandInput(name=input["new_name"])


@workflow("replace-brand")
def replace_brand_workflow(input: Ref[ReplaceBrandInput]) -> WorkflowResponse[dict[str, Any]]:
    """Retire a brand and create its successor, by running ``delete-brand`` and ``create-brand`` as
    nested workflows (steps ``delete-brand-basic-as-step`` and ``create-brand-basic-as-step``). If the second
    fails, the first is reverted: the old brand is restored."""
    deleted = delete_brand_workflow.run_as_step(transform(input, _old_brand))
    created = create_brand_workflow.run_as_step(transform(input, _new_brand))
    return WorkflowResponse({"deleted": deleted, "created": created})
