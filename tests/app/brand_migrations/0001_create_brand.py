"""Create the brand table."""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("brand", sa.Column("id", sa.String(40), primary_key=True),
                    sa.Column("name", sa.String(100), nullable=False))


def downgrade() -> None:
    op.drop_table("brand")
