"""What each version of a paper said (title, abstract, authors, comments), for the diff.

The current version's text is the paper row itself; this table keeps the text of every version
a newer one replaced (written by app.db.store and app.db.bulk in the replacing transaction).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # A new table only: no batch mode is needed on SQLite (nothing is altered). It starts
    # empty: the papers already stored hold their current text, which is all that was seen.
    op.create_table(
        "paper_revisions",
        sa.Column("arxiv_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("abstract", sa.Text(), nullable=False),
        sa.Column("authors", sa.JSON(), nullable=False),
        sa.Column("comments", sa.Text(), nullable=True),
        sa.Column("journal_ref", sa.Text(), nullable=True),
        sa.Column("seen_at", TS, nullable=False),
        sa.Column("replaced_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["arxiv_id"],
            ["papers.arxiv_id"],
            name="fk_paper_revisions_arxiv_id_papers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("arxiv_id", "version", name="pk_paper_revisions"),
    )


def downgrade() -> None:
    op.drop_table("paper_revisions")
