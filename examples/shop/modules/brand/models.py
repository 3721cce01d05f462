"""The brand module's data: one table, ``brand``."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "Brand"]


class Base(DeclarativeBase):
    """The declarative base of the brand module's models."""


class Brand(Base):
    """A brand: its id (``brand_…``), a unique name, and when it was created."""

    __tablename__ = "brand"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(UTC))
