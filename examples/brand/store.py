"""The brand application's services: an in-memory brand store and three small fakes around it.

Steps never import these objects: they resolve them from the container they run with
(``ctx.container.resolve("brand_store")``), as a Medusa step resolves a module's service. Register
other objects under the same names and the same workflows run against them.

Registered names:

- ``brand_store``: :class:`BrandStore`, the brands (create, delete, restore, get, list)
- ``audit_log``: :class:`AuditLog`, an audit trail whose entries can be withdrawn
- ``cms``: :class:`FakeCms`, an external CMS the brands are published to; it can be "down"
- ``mailer``: :class:`Mailer`, outgoing e-mail, which cannot be recalled
"""

from __future__ import annotations

import builtins
import itertools
from typing import TypedDict

from stepwork import Container, StepworkError

__all__ = [
    "AuditEntry",
    "AuditLog",
    "Brand",
    "BrandStore",
    "Email",
    "FakeCms",
    "Mailer",
    "audit_log",
    "brand_store",
    "cms",
    "container",
    "mailer",
    "make_container",
]

_NOT_FOUND = StepworkError.Types.NOT_FOUND
_DUPLICATE = StepworkError.Types.DUPLICATE_ERROR


class Brand(TypedDict):
    """A brand, as the store keeps it."""

    id: str
    name: str


class BrandStore:
    """Brands by id, in memory. Names are unique (case-insensitive); ids are ``brand_01``, ``brand_02``…

    Every method returns copies, so callers cannot change the stored brands by accident.
    """

    def __init__(self) -> None:
        self._brands: dict[str, Brand] = {}
        self._ids = itertools.count(1)

    def create(self, name: str) -> Brand:
        """Add a brand named ``name``; ``StepworkError`` (``duplicate_error``) if the name is taken."""
        if any(b["name"].casefold() == name.casefold() for b in self._brands.values()):
            raise StepworkError(_DUPLICATE, f'A brand named "{name}" already exists.')
        brand = Brand(id=f"brand_{next(self._ids):02d}", name=name)
        self._brands[brand["id"]] = brand
        return Brand(**brand)

    def delete(self, brand_id: str) -> Brand:
        """Remove the brand ``brand_id`` and return it; ``StepworkError`` (``not_found``) if absent."""
        brand = self._brands.pop(brand_id, None)
        if brand is None:
            raise StepworkError(_NOT_FOUND, f'Brand "{brand_id}" was not found.')
        return brand

    def restore(self, brand: Brand) -> Brand:
        """Put a deleted brand back under its own id (how a compensation undoes :meth:`delete`)."""
        self._brands[brand["id"]] = Brand(**brand)
        self._brands = dict(sorted(self._brands.items()))  # keep listing order by id
        return Brand(**brand)

    def get(self, brand_id: str) -> Brand | None:
        """The brand ``brand_id``, or ``None``."""
        brand = self._brands.get(brand_id)
        return None if brand is None else Brand(**brand)

    def list(self) -> builtins.list[Brand]:
        """Every brand, by id."""
        return [Brand(**b) for b in self._brands.values()]


class AuditEntry(TypedDict):
    """One line of the audit trail."""

    id: int
    action: str
    actor: str
    brand_ids: list[str]


class AuditLog:
    """A list of :class:`AuditEntry`; :meth:`withdraw` undoes :meth:`record`."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []
        self._ids = itertools.count(1)

    def record(self, action: str, actor: str, brand_ids: builtins.list[str]) -> AuditEntry:
        """Append an entry and return it."""
        entry = AuditEntry(id=next(self._ids), action=action, actor=actor, brand_ids=list(brand_ids))
        self.entries.append(entry)
        return entry

    def withdraw(self, entry_id: int) -> None:
        """Remove the entry ``entry_id`` (no error if it is gone already)."""
        self.entries = [e for e in self.entries if e["id"] != entry_id]


class FakeCms:
    """A remote CMS holding one page per published brand. Set ``available = False`` to take it down."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self.available = True
        self.calls = 0

    def publish(self, brand: Brand) -> str:
        """Publish ``brand``'s page and return its URL; ``ConnectionError`` while the CMS is down."""
        self.calls += 1
        if not self.available:
            raise ConnectionError("CMS unavailable (HTTP 503)")
        url = f"https://cms.example.test/brands/{brand['id']}"
        self.pages[brand["id"]] = url
        return url

    def unpublish(self, brand_id: str) -> None:
        """Remove a brand's page (no error if there is none)."""
        self.pages.pop(brand_id, None)


class Email(TypedDict):
    """A sent message."""

    to: str
    subject: str


class Mailer:
    """Outgoing e-mail, kept in ``sent``. Mail cannot be recalled, so nothing undoes :meth:`send`."""

    def __init__(self) -> None:
        self.sent: list[Email] = []

    def send(self, to: str, subject: str) -> Email:
        """Send (here: record) a message and return it."""
        message = Email(to=to, subject=subject)
        self.sent.append(message)
        return message


def make_container() -> Container:
    """A new container with new, empty services (for tests, or a second tenant)."""
    fresh = Container()
    fresh.register("brand_store", BrandStore())
    fresh.register("audit_log", AuditLog())
    fresh.register("cms", FakeCms())
    fresh.register("mailer", Mailer())
    return fresh


# The application's services, registered once in its container: what the demo runs with.
brand_store = BrandStore()
audit_log = AuditLog()
cms = FakeCms()
mailer = Mailer()

container = Container()
container.register("brand_store", brand_store)
container.register("audit_log", audit_log)
container.register("cms", cms)
container.register("mailer", mailer)
