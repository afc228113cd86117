"""A marker for a deferred build of SQLite's FTS5 index.

A large import leaves new papers out of `papers_fts` and rebuilds the index once after the
load (app.search.sqlite_fts); the row it commits here first says the rebuild is owed, so an
import killed midway is completed later (`papershelf import`, `papershelf reindex`). Named
under `papers_fts` like the index's own tables, which the models do not describe. PostgreSQL
needs no marker: a deferred GIN index is simply missing until it is built.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE TABLE papers_fts_pending (deferred_at TEXT NOT NULL)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS papers_fts_pending")
