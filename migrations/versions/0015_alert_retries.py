"""Alert deliveries that failed are tried again later: how many rounds ran, and when the
next one is due.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Added columns with a default (or nullable) need no batch copy on SQLite.
    op.add_column(
        "alert_deliveries",
        sa.Column("rounds", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "alert_deliveries", sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index("ix_alert_deliveries_retry_at", "alert_deliveries", ["retry_at"])


def downgrade() -> None:
    op.drop_index("ix_alert_deliveries_retry_at", table_name="alert_deliveries")
    with op.batch_alter_table("alert_deliveries") as batch:
        batch.drop_column("retry_at")
        batch.drop_column("rounds")
