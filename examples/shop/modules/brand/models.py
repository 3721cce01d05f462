"""The brand module's data: one table, ``brand``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, String, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "Brand"]


class UtcDateTime(TypeDecorator[datetime]):
    """A moment in UTC, read back time-zone aware on every database (SQLite stores no zone and
    would hand back a naive value, so that one brand would show ``+00:00`` when created and no
    zone when read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value  # type: ignore[no-any-return]


class Base(DeclarativeBase):
    """The declarative base of the brand module's models."""


class Brand(Base):
    """A brand: its id (``brand_…``), a unique name, and when it was created."""

    __tablename__ = "brand"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=lambda: datetime.now(UTC))
