"""The modules the application tests load: brands (Alembic migrations, a service) and products."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from stepwork.app import Module
from tests.query.models import Brand, Product

MIGRATIONS = Path(__file__).parent / "brand_migrations"


class BrandService:
    """Creates and deletes brands in the application's database."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.sessions = session_factory

    def create(self, brand_id: str, name: str) -> dict[str, Any]:
        with self.sessions.begin() as session:
            session.add(Brand(id=brand_id, name=name))
        return {"id": brand_id, "name": name}

    def delete(self, brand_id: str) -> None:
        with self.sessions.begin() as session:
            session.execute(sa.delete(Brand).where(Brand.id == brand_id))


class ProductService:
    """Knows the brand service (resolved from the container by its module's name)."""

    def __init__(self, brand: BrandService, container: Any) -> None:
        self.brand = brand
        self.container = container


def brand_module(migrations: Path = MIGRATIONS) -> Module:
    return Module("brand", BrandService, models=[Brand], migrations=migrations)


product_module = Module("product", ProductService, models=[Product])  # no migrations: tables as declared
configured_brand_module = brand_module()
