"""Related papers: each paper's top TF-IDF keywords (written by app.related.build).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "paper_keywords",
        sa.Column("arxiv_id", sa.String(32), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("built_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["arxiv_id"],
            ["papers.arxiv_id"],
            name="fk_paper_keywords_arxiv_id_papers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("arxiv_id", name="pk_paper_keywords"),
    )


def downgrade() -> None:
    op.drop_table("paper_keywords")
