"""Fetch bookkeeping: fetch runs, OAI-PMH harvest progress, per-day completeness checks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "fetch_runs",
        sa.Column("pk", PK, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(128)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("category", sa.String(32)),
        sa.Column("day", sa.Date()),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("fetched", sa.Integer(), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("announcements", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.PrimaryKeyConstraint("pk", name="pk_fetch_runs"),
    )
    op.create_index("ix_fetch_runs_started_at", "fetch_runs", ["started_at"])
    op.create_table(
        "harvest_states",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("set_spec", sa.String(64), nullable=False),
        sa.Column("date_from", sa.Date()),
        sa.Column("date_until", sa.Date()),
        sa.Column("resumption_token", sa.Text()),
        sa.Column("cursor", sa.Integer()),
        sa.Column("complete_list_size", sa.Integer()),
        sa.Column("harvested", sa.Integer(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_harvest_states"),
    )
    op.create_table(
        "day_checks",
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("feed_count", sa.Integer(), nullable=False),
        sa.Column("stored_count", sa.Integer(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("checked_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("category", "day", name="pk_day_checks"),
    )


def downgrade() -> None:
    op.drop_table("day_checks")
    op.drop_table("harvest_states")
    op.drop_index("ix_fetch_runs_started_at", table_name="fetch_runs")
    op.drop_table("fetch_runs")
