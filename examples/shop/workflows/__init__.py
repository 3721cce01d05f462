"""The shop's workflows: ``create-brand``, ``delete-brand``, ``get-brand``."""

from examples.shop.workflows.create_brand import CreateBrandInput, create_brand_step, create_brand_workflow
from examples.shop.workflows.delete_brand import DeleteBrandInput, delete_brand_step, delete_brand_workflow
from examples.shop.workflows.get_brand import get_brand_workflow

__all__ = [
    "CreateBrandInput",
    "DeleteBrandInput",
    "create_brand_step",
    "create_brand_workflow",
    "delete_brand_step",
    "delete_brand_workflow",
    "get_brand_workflow",
]
