"""Create the brand table."""

import sqlalchemy as sa
from alembic import op

revision = "0001_create_brand"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "brand",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
