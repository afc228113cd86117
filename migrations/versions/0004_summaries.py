"""Machine-written TL;DRs from the ML pool (written by app.summaries).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # A new table only: no batch mode is needed on SQLite (nothing is altered).
    op.create_table(
        "summaries",
        sa.Column("arxiv_id", sa.String(32), nullable=False),
        sa.Column("paper_version", sa.Integer(), nullable=True),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("tldr", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["arxiv_id"],
            ["papers.arxiv_id"],
            name="fk_summaries_arxiv_id_papers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("arxiv_id", name="pk_summaries"),
    )


def downgrade() -> None:
    op.drop_table("summaries")
