"""Two modules' models with a relation between them: brands and their products."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Brand(Base):
    __tablename__ = "brand"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    rank: Mapped[int | None]
    products: Mapped[list[Product]] = relationship(back_populates="brand", order_by="Product.id")


class Product(Base):
    __tablename__ = "product"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    price: Mapped[int]
    brand_id: Mapped[str | None] = mapped_column(ForeignKey("brand.id"))
    brand: Mapped[Brand | None] = relationship(back_populates="products")


BRANDS = [
    {"id": "b1", "name": "Acme", "rank": 1},
    {"id": "b2", "name": "acme labs", "rank": 2},
    {"id": "b3", "name": "Zenith", "rank": 3},
    {"id": "b4", "name": "100%_Pure", "rank": None},
]
PRODUCTS = [
    {"id": "p1", "name": "Anvil", "price": 50, "brand_id": "b1"},
    {"id": "p2", "name": "Rocket", "price": 900, "brand_id": "b1"},
    {"id": "p3", "name": "Beaker", "price": 12, "brand_id": "b2"},
    {"id": "p4", "name": "Orphan", "price": 1, "brand_id": None},
]
