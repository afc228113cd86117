"""Placeholder thumbnails remember when a PDF was last tried for them, so that turning PDFs
on later upgrades the placeholders made before, and a paper whose PDF failed is retried after
a while rather than on every back-fill.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("thumbnails") as batch:
        batch.add_column(sa.Column("pdf_tried_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("thumbnails") as batch:
        batch.drop_column("pdf_tried_at")
