"""Paper embeddings from the ML pool (written by app.artifacts.embeddings).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # A new table only: no batch mode is needed on SQLite (nothing is altered).
    op.create_table(
        "paper_embeddings",
        sa.Column("arxiv_id", sa.String(32), nullable=False),
        sa.Column("paper_version", sa.Integer(), nullable=True),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["arxiv_id"],
            ["papers.arxiv_id"],
            name="fk_paper_embeddings_arxiv_id_papers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("arxiv_id", name="pk_paper_embeddings"),
    )
    op.create_index("ix_paper_embeddings_created_at", "paper_embeddings", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_paper_embeddings_created_at", table_name="paper_embeddings")
    op.drop_table("paper_embeddings")
