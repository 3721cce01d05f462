"""The brand steps: each does one thing and knows how to undo it.

Two ways to write a step are shown side by side:

- the function form, ``create_step(name_or_config, invoke, compensate)``, used by
  :data:`create_brand_step`, :data:`record_audit_entry_step` and :data:`notify_brand_team_step`;
- the decorator form, ``@step(...)`` on the invoke function and ``@that_step.compensate`` on the
  compensation, used by :data:`delete_brand_step`, :data:`create_brands_step` and
  :data:`publish_brands_step`.

Services come from the run's container (``ctx.container.resolve("brand_store")``), never from
imports, so the same steps run against any store registered under that name.
"""

from __future__ import annotations

from typing import Any, TypedDict

from examples.brand.store import AuditEntry, AuditLog, Brand, BrandStore, Email, FakeCms, Mailer
from stepwork import StepContext, StepResponse, create_step, step

__all__ = [
    "AuditEntryInput",
    "CreateBrandInput",
    "DeleteBrandInput",
    "DeletedBrand",
    "create_brand_step",
    "create_brands_step",
    "delete_brand_step",
    "notify_brand_team_step",
    "publish_brands_step",
    "record_audit_entry_step",
]


# -- inputs and outputs -------------------------------------------------------------------------


class CreateBrandInput(TypedDict):
    """Input of ``create-brand``."""

    name: str


class DeleteBrandInput(TypedDict):
    """Input of ``delete-brand``."""

    id: str


class DeletedBrand(TypedDict):
    """Output of ``delete-brand`` (the shape of Medusa's delete responses)."""

    id: str
    object: str
    deleted: bool


class AuditEntryInput(TypedDict):
    """Input of ``record-audit-entry``."""

    action: str
    actor: str
    brand_ids: list[str]


def _store(ctx: StepContext) -> BrandStore:
    store: BrandStore = ctx.container.resolve("brand_store")
    return store


# -- create-brand: the function form ------------------------------------------------------------


def create_brand(input: CreateBrandInput, ctx: StepContext) -> StepResponse[Brand, str]:
    """Create the brand. Output: the brand; compensation input: only its id."""
    brand = _store(ctx).create(input["name"])
    return StepResponse(brand, brand["id"])


def undo_create_brand(brand_id: str | None, ctx: StepContext) -> None:
    """Delete the brand created by :func:`create_brand`.

    ``brand_id`` is ``None`` when ``create-brand`` itself failed (nothing was created).
    """
    store = _store(ctx)
    if brand_id is not None and store.get(brand_id) is not None:
        store.delete(brand_id)


create_brand_step = create_step("create-brand", create_brand, undo_create_brand)


# -- delete-brand: the decorator form -----------------------------------------------------------


@step("delete-brand")
def delete_brand_step(input: DeleteBrandInput, ctx: StepContext) -> StepResponse[DeletedBrand, Brand]:
    """Delete the brand. Output: ``{id, object, deleted}``; compensation input: the whole brand."""
    brand = _store(ctx).delete(input["id"])
    return StepResponse(DeletedBrand(id=brand["id"], object="brand", deleted=True), brand)


@delete_brand_step.compensate
def restore_brand(brand: Brand | None, ctx: StepContext) -> None:
    """Put the deleted brand back, with its id (``None``: the delete itself failed)."""
    if brand is not None:
        _store(ctx).restore(brand)


# -- create-brands: several at once -------------------------------------------------------------


@step("create-brands")
def create_brands_step(names: list[str], ctx: StepContext) -> StepResponse[list[Brand], list[str]]:
    """Create one brand per name.

    If a name is taken the step fails permanently (a retry would fail the same way), handing the
    ids created so far to its own compensation, which deletes them.
    """
    store = _store(ctx)
    created: list[Brand] = []
    for name in names:
        try:
            created.append(store.create(name))
        except Exception as exc:
            return StepResponse.permanent_failure(f"Cannot create brand {name!r}: {exc}",
                                                  compensate_input=[b["id"] for b in created])
    return StepResponse(created, [b["id"] for b in created])


@create_brands_step.compensate
def delete_created_brands(brand_ids: list[str] | None, ctx: StepContext) -> None:
    """Delete the brands :data:`create_brands_step` created."""
    store = _store(ctx)
    for brand_id in brand_ids or []:
        if store.get(brand_id) is not None:
            store.delete(brand_id)


# -- record-audit-entry -------------------------------------------------------------------------


def record_audit_entry(input: AuditEntryInput, ctx: StepContext) -> StepResponse[AuditEntry, int]:
    """Write an audit entry; compensation input: the entry's id."""
    audit: AuditLog = ctx.container.resolve("audit_log")
    entry = audit.record(input["action"], input["actor"], input["brand_ids"])
    return StepResponse(entry, entry["id"])


def withdraw_audit_entry(entry_id: int | None, ctx: StepContext) -> None:
    """Withdraw the entry :func:`record_audit_entry` wrote."""
    if entry_id is not None:
        audit: AuditLog = ctx.container.resolve("audit_log")
        audit.withdraw(entry_id)


record_audit_entry_step = create_step("record-audit-entry", record_audit_entry, withdraw_audit_entry)


# -- publish-brands: a remote call, retried ----------------------------------------------------


@step({"name": "publish-brands", "max_retries": 2})
async def publish_brands_step(brands: list[Brand], ctx: StepContext) -> StepResponse[dict[str, str], list[str]]:
    """Publish a page per brand on the CMS; output ``{brand_id: url}``.

    A ``ConnectionError`` is retried twice (``max_retries``: three attempts in all) before the step
    fails for good. ``ctx.attempt`` says which attempt this is.
    """
    cms: FakeCms = ctx.container.resolve("cms")
    ctx.logger.info("publishing %d brand(s), attempt %d", len(brands), ctx.attempt)
    pages = {brand["id"]: cms.publish(brand) for brand in brands}
    return StepResponse(pages, list(pages))


@publish_brands_step.compensate
async def unpublish_brands(brand_ids: list[str] | None, ctx: StepContext) -> None:
    """Remove the pages :data:`publish_brands_step` published."""
    cms: FakeCms = ctx.container.resolve("cms")
    for brand_id in brand_ids or []:
        cms.unpublish(brand_id)


# -- notify-brand-team: no compensation ---------------------------------------------------------


def notify_brand_team(input: dict[str, Any], ctx: StepContext) -> Email:
    """E-mail the brand team about new brands. Mail cannot be recalled, so there is no compensation:
    put such steps last, where nothing after them can fail.

    The input is annotated ``dict[str, Any]`` so that a composer may pass a dict mixing literals and
    references, e.g. ``{"to": input.requested_by, "brands": brands}``.
    """
    mailer: Mailer = ctx.container.resolve("mailer")
    names = ", ".join(brand["name"] for brand in input["brands"])
    return mailer.send(input["to"], f"New brands: {names}")


notify_brand_team_step = create_step("notify-brand-team", notify_brand_team)
