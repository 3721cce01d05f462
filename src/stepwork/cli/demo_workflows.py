"""The demo workflows that ``stepwork demo`` runs (import this module with ``--app`` to serve them).

- ``demo-create-brand``: validates and creates a brand, publishes its page and records an audit entry
  in parallel, and e-mails the team when asked (a ``when`` branch). It completes.
- ``demo-create-brand-and-publish``: creates a brand and reserves its URL handle, then fails to
  publish (the CMS is down, after one retry): the handle and the brand are compensated, the run ends
  ``reverted``.
- ``demo-brand-approval``: creates a brand, then waits on a long-running ``await-approval`` step
  until someone completes it (``POST /admin/workflows-executions/demo-brand-approval/steps/success``).

They keep their executions for a week (``retention_time``), so the demo's data stays to be looked at.
Their steps touch nothing outside the run: the brands are the steps' outputs.
"""

from __future__ import annotations

import secrets
from typing import Any

from stepwork.engine.context import StepContext
from stepwork.engine.step_response import StepResponse
from stepwork.errors import StepworkError
from stepwork.sdk.composition import parallelize, when
from stepwork.sdk.references import Ref
from stepwork.sdk.steps import create_step
from stepwork.sdk.workflows import WorkflowResponse, workflow

__all__ = ["RETENTION", "brand_approval", "brand_created", "brand_rolled_back"]

RETENTION = 7 * 24 * 3600  # seconds: a week


def _validate(input: dict[str, Any]) -> dict[str, Any]:
    name = str(input.get("name") or "").strip()
    if not name:
        raise StepworkError(StepworkError.Types.INVALID_DATA, "A brand needs a name.")
    return {"name": name}


def _create(input: dict[str, Any], ctx: StepContext) -> StepResponse[dict[str, Any], str]:
    brand = {"id": f"brand_{secrets.token_hex(4)}", "name": input["name"]}
    return StepResponse(brand, brand["id"])


def _delete(brand_id: str) -> dict[str, Any]:
    return {"id": brand_id, "object": "brand", "deleted": True}


def _handle(brand: dict[str, Any]) -> StepResponse[str, str]:
    handle = "-".join(brand["name"].lower().split())
    return StepResponse(handle, handle)


def _release_handle(handle: str) -> dict[str, Any]:
    return {"released": handle}


def _publish(input: dict[str, Any]) -> dict[str, Any]:
    if input.get("cms_down"):
        raise ConnectionError("The CMS is down (503 Service Unavailable).")
    return {"url": f"https://brands.example.com/{input['brand']['id']}"}


def _unpublish(page: dict[str, Any]) -> None:
    return None


def _audit(brand: dict[str, Any]) -> dict[str, Any]:
    return {"action": "brand.created", "brand_id": brand["id"]}


def _email(brand: dict[str, Any]) -> dict[str, Any]:
    return {"to": "brand-team@example.com", "subject": f"New brand: {brand['name']}"}


def _ask_for_approval(brand: dict[str, Any]) -> None:
    return None  # the approval arrives later, from outside (set_step_success / the admin API)


validate_brand = create_step("validate-brand", _validate)
create_brand = create_step("create-brand", _create, _delete)
reserve_handle = create_step("reserve-handle", _handle, _release_handle)
publish_brand_page = create_step({"name": "publish-brand-page", "max_retries": 1}, _publish, _unpublish)
record_audit_entry = create_step("record-audit-entry", _audit)
send_team_email = create_step("send-team-email", _email)
await_approval = create_step({"name": "await-approval", "async": True}, _ask_for_approval)


@workflow({"name": "demo-create-brand", "retention_time": RETENTION})
def brand_created(input: Ref[dict[str, Any]]) -> WorkflowResponse[dict[str, Any]]:
    """Validate, create, then publish and audit in parallel; e-mail the team if ``notify``."""
    data = validate_brand(input)
    brand = create_brand(data)
    page, audit = parallelize(publish_brand_page({"brand": brand}), record_audit_entry(brand))
    email = when(input, lambda i: bool(i.get("notify"))).then(lambda: send_team_email(brand))
    return WorkflowResponse({"brand": brand, "page": page, "audit": audit, "email": email})


@workflow({"name": "demo-create-brand-and-publish", "retention_time": RETENTION})
def brand_rolled_back(input: Ref[dict[str, Any]]) -> WorkflowResponse[dict[str, Any]]:
    """Create a brand, reserve its handle, publish its page; when publishing fails, undo the rest."""
    brand = create_brand(input)
    handle = reserve_handle(brand)
    page = publish_brand_page({"brand": brand, "cms_down": input.cms_down})
    return WorkflowResponse({"brand": brand, "handle": handle, "page": page})


@workflow({"name": "demo-brand-approval", "retention_time": RETENTION})
def brand_approval(input: Ref[dict[str, Any]]) -> WorkflowResponse[dict[str, Any]]:
    """Create a brand, wait for someone to approve it, then publish its page."""
    brand = create_brand(input)
    approval = await_approval(brand)
    page = publish_brand_page({"brand": brand})
    return WorkflowResponse({"brand": brand, "approval": approval, "page": page})
