"""The brand module: ``brand_module``, registered in the container as ``"brand"``."""

from pathlib import Path

from examples.shop.modules.brand.models import Brand
from examples.shop.modules.brand.service import BrandData, BrandModuleService
from stepwork import Module

__all__ = ["BRAND_MODULE", "Brand", "BrandData", "BrandModuleService", "brand_module"]

BRAND_MODULE = "brand"

brand_module = Module(BRAND_MODULE, BrandModuleService, models=[Brand],
                      migrations=Path(__file__).parent / "migrations" / "versions")
"""The module: its service, its model (queryable as ``brand``), its Alembic revisions."""
