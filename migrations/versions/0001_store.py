"""The paper store: papers, versions, categories, announcements, venues, clicks, search.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

# External-content FTS5 over papers. New rows are indexed set-based by app.db.store (the
# only writer), which is much faster than a per-row insert trigger; updates and deletes are
# kept in step by triggers. `papershelf reindex` rebuilds it from the table.
# Porter stemming plus diacritic folding, so "Schrodinger" also finds "Schrödinger".
SQLITE_FTS = [
    """CREATE VIRTUAL TABLE papers_fts USING fts5(
        title, abstract, authors,
        content='papers', content_rowid='pk',
        tokenize='porter unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER papers_fts_ad AFTER DELETE ON papers BEGIN
        INSERT INTO papers_fts(papers_fts, rowid, title, abstract, authors)
        VALUES ('delete', old.pk, old.title, old.abstract, old.authors);
    END""",
    """CREATE TRIGGER papers_fts_au AFTER UPDATE OF title, abstract, authors ON papers BEGIN
        INSERT INTO papers_fts(papers_fts, rowid, title, abstract, authors)
        VALUES ('delete', old.pk, old.title, old.abstract, old.authors);
        INSERT INTO papers_fts(rowid, title, abstract, authors)
        VALUES (new.pk, new.title, new.abstract, new.authors);
    END""",
]

# Weighted tsvector: title A, authors B, abstract C; GIN-indexed.
PG_SEARCH = [
    """ALTER TABLE papers ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', coalesce(title, '')), 'A') ||
        setweight(to_tsvector('simple', coalesce(authors::text, '')), 'B') ||
        setweight(to_tsvector('english', coalesce(abstract, '')), 'C')) STORED""",
    "CREATE INDEX ix_papers_search_vector ON papers USING gin (search_vector)",
]


def upgrade() -> None:
    op.create_table(
        "papers",
        sa.Column("pk", PK, primary_key=True, autoincrement=True),
        sa.Column("arxiv_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer()),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("abstract", sa.Text(), nullable=False),
        sa.Column("authors", sa.JSON(), nullable=False),
        sa.Column("primary_category", sa.String(32), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("classes", sa.JSON()),
        sa.Column("comments", sa.Text()),
        sa.Column("journal_ref", sa.Text()),
        sa.Column("doi", sa.Text()),
        sa.Column("license", sa.Text()),
        sa.Column("first_submitted_at", TS),
        sa.Column("last_updated_at", TS),
        sa.Column("announced_on", sa.Date()),
        sa.Column("sort_date", sa.Date(), nullable=False),
        sa.Column("title_key", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.Column("stored_at", TS, nullable=False),
        sa.Column("changed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_papers"),
        sa.UniqueConstraint("arxiv_id", name="uq_papers_arxiv_id"),
    )
    op.create_index("ix_papers_sort_date_arxiv_id", "papers", ["sort_date", "arxiv_id"])
    op.create_index("ix_papers_title_key", "papers", ["title_key"])

    op.create_table(
        "paper_versions",
        sa.Column("arxiv_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("submitted_at", TS),
        sa.Column("size", sa.String(32)),
        sa.ForeignKeyConstraint(
            ["arxiv_id"],
            ["papers.arxiv_id"],
            ondelete="CASCADE",
            name="fk_paper_versions_arxiv_id_papers",
        ),
        sa.PrimaryKeyConstraint("arxiv_id", "version", name="pk_paper_versions"),
    )
    op.create_table(
        "paper_categories",
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("arxiv_id", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["arxiv_id"],
            ["papers.arxiv_id"],
            ondelete="CASCADE",
            name="fk_paper_categories_arxiv_id_papers",
        ),
        sa.PrimaryKeyConstraint("category", "arxiv_id", name="pk_paper_categories"),
    )
    op.create_index("ix_paper_categories_arxiv_id", "paper_categories", ["arxiv_id"])
    op.create_table(
        "announcements",
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("arxiv_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("position", sa.Integer()),
        sa.ForeignKeyConstraint(
            ["arxiv_id"],
            ["papers.arxiv_id"],
            ondelete="CASCADE",
            name="fk_announcements_arxiv_id_papers",
        ),
        sa.PrimaryKeyConstraint("category", "day", "arxiv_id", name="pk_announcements"),
    )
    op.create_index("ix_announcements_arxiv_id", "announcements", ["arxiv_id"])
    op.create_index("ix_announcements_day", "announcements", ["day"])
    op.create_table(
        "venues",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("paper_count", sa.Integer(), nullable=False),
        sa.Column("linked_count", sa.Integer(), nullable=False),
        sa.Column("imported_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_venues"),
    )
    op.create_table(
        "venue_papers",
        sa.Column("pk", PK, primary_key=True, autoincrement=True),
        sa.Column("venue", sa.String(64), nullable=False),
        sa.Column("venue_paper_id", sa.String(128), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("title_key", sa.Text(), nullable=False),
        sa.Column("authors", sa.JSON(), nullable=False),
        sa.Column("abstract", sa.Text()),
        sa.Column("status", sa.String(64)),
        sa.Column("track", sa.String(128)),
        sa.Column("site", sa.Text()),
        sa.Column("keywords", sa.JSON()),
        sa.Column("tldr", sa.Text()),
        sa.Column("arxiv_id", sa.String(32)),
        sa.ForeignKeyConstraint(
            ["venue"], ["venues.name"], ondelete="CASCADE", name="fk_venue_papers_venue_venues"
        ),
        sa.PrimaryKeyConstraint("pk", name="pk_venue_papers"),
        sa.UniqueConstraint("venue", "venue_paper_id", name="uq_venue_papers_venue_venue_paper_id"),
    )
    op.create_index("ix_venue_papers_title_key", "venue_papers", ["title_key"])
    op.create_index("ix_venue_papers_arxiv_id", "venue_papers", ["arxiv_id"])
    op.create_table(
        "paper_clicks",
        sa.Column("arxiv_id", sa.String(32), nullable=False),
        sa.Column("pdf", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("arxiv_id", name="pk_paper_clicks"),
    )

    statements = SQLITE_FTS if op.get_bind().dialect.name == "sqlite" else PG_SEARCH
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("papers_fts_ad", "papers_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS papers_fts")
    for table in (
        "paper_clicks",
        "venue_papers",
        "venues",
        "announcements",
        "paper_categories",
        "paper_versions",
        "papers",
    ):
        op.drop_table(table)
