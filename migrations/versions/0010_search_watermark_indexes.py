"""Indexes on papers.changed_at and summaries.created_at: the full-text index's watermark
(app.search.fulltext) asks for the newest change and TL;DR on every search, and reads the
rows changed since its last sync.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_papers_changed_at", "papers", ["changed_at"])
    op.create_index("ix_summaries_created_at", "summaries", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_summaries_created_at", table_name="summaries")
    op.drop_index("ix_papers_changed_at", table_name="papers")
