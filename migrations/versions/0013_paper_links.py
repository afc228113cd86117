"""Code, data and venue badges found in a paper's abstract, comments and journal-ref.

A new table written by the store with each paper (`app.ingest.links` finds what goes in it);
this revision fills it for the papers already stored. Only rows that can hold a link or a
venue are read (SQL filters out abstracts without anything URL-like and papers without
comments or journal-ref); Python parses them in batches.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.ingest.links import find_paper_links

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 2000


def upgrade() -> None:
    op.create_table(
        "paper_links",
        sa.Column("arxiv_id", sa.String(32), nullable=False),
        sa.Column("has_code", sa.Boolean(), nullable=False),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.Column("venue", sa.String(200), nullable=True),
        sa.Column("venue_key", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["arxiv_id"],
            ["papers.arxiv_id"],
            name="fk_paper_links_arxiv_id_papers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("arxiv_id", name="pk_paper_links"),
    )
    _backfill(op.get_bind())


def _backfill(conn: sa.Connection) -> None:
    papers = sa.table(
        "papers",
        sa.column("pk", sa.Integer()),
        sa.column("arxiv_id", sa.String()),
        sa.column("abstract", sa.Text()),
        sa.column("comments", sa.Text()),
        sa.column("journal_ref", sa.Text()),
    )
    links = sa.table(
        "paper_links",
        sa.column("arxiv_id", sa.String()),
        sa.column("has_code", sa.Boolean()),
        sa.column("links", sa.JSON()),
        sa.column("venue", sa.String()),
        sa.column("venue_key", sa.String()),
    )
    # Every link has "://" or a host ending ".co", ".io" or ".org" (app.ingest.links).
    abstract = sa.func.lower(papers.c.abstract)
    may_hold = sa.or_(
        papers.c.comments.is_not(None),
        papers.c.journal_ref.is_not(None),
        *(abstract.like(f"%{part}%") for part in ("://", ".co", ".io", ".org")),
    )
    last = 0
    while True:
        rows = conn.execute(
            sa.select(
                papers.c.pk,
                papers.c.arxiv_id,
                papers.c.abstract,
                papers.c.comments,
                papers.c.journal_ref,
            )
            .where(papers.c.pk > last, may_hold)
            .order_by(papers.c.pk)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        last = rows[-1].pk
        values = []
        for row in rows:
            found = find_paper_links(row.abstract, row.comments, row.journal_ref)
            if found.empty:
                continue
            values.append(
                {
                    "arxiv_id": row.arxiv_id,
                    "has_code": found.has_code,
                    "links": found.links_json(),
                    "venue": found.venue.label[:200] if found.venue else None,
                    "venue_key": found.venue.key[:64] if found.venue and found.venue.key else None,
                }
            )
        if values:
            conn.execute(links.insert(), values)


def downgrade() -> None:
    op.drop_table("paper_links")
