"""``BrandModuleService``: what steps and routes do with brands (resolved from the container as ``"brand"``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TypedDict

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from examples.shop.modules.brand.models import Brand
from stepwork import StepworkError

__all__ = ["BrandData", "BrandModuleService"]


class BrandData(TypedDict):
    """A brand as the service hands it out (JSON-ready)."""

    id: str
    name: str
    created_at: str


def _data(brand: Brand) -> BrandData:
    return BrandData(id=brand.id, name=brand.name, created_at=_iso(brand.created_at))


def _iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, as stepwork writes every time it hands out (query results too)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class BrandModuleService:
    """Create, restore, delete and read brands, each call in its own database transaction."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    def create_brand(self, name: str) -> BrandData:
        """A new brand named ``name``; a ``duplicate_error`` if the name is taken."""
        return self.restore_brand(BrandData(id=f"brand_{uuid.uuid4().hex[:24]}", name=name, created_at=""))

    def restore_brand(self, data: BrandData) -> BrandData:
        """Insert ``data`` as it is (its id and, if given, its creation time): a deleted brand comes back."""
        brand = Brand(id=data["id"], name=data["name"])
        if data["created_at"]:
            brand.created_at = datetime.fromisoformat(data["created_at"])
        try:
            with self._sessions.begin() as session:
                session.add(brand)
                session.flush()
                return _data(brand)
        except IntegrityError:
            raise StepworkError(StepworkError.Types.DUPLICATE_ERROR,
                                f'A brand named "{data["name"]}" already exists.') from None

    def delete_brand(self, brand_id: str) -> bool:
        """Delete the brand ``brand_id``; ``False`` if there was none."""
        with self._sessions.begin() as session:
            deleted = session.execute(sa.delete(Brand).where(Brand.id == brand_id).returning(Brand.id)).first()
        return deleted is not None

    def retrieve_brand(self, brand_id: str) -> BrandData:
        """The brand ``brand_id``; a ``not_found`` error if there is none."""
        with self._sessions() as session:
            brand = session.get(Brand, brand_id)
            if brand is None:
                raise StepworkError(StepworkError.Types.NOT_FOUND, f'Brand "{brand_id}" was not found.')
            return _data(brand)

    def count_brands(self) -> int:
        """How many brands there are."""
        with self._sessions() as session:
            return int(session.scalar(sa.select(sa.func.count()).select_from(Brand)) or 0)
