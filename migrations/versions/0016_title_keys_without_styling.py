"""Title keys without TeX styling commands: "\\textsc{SimInstruct}: …" is keyed like
"SimInstruct: …" (app.ingest.text.title_key), so such a paper links to its venue entry.

Only titles holding a backslash can change; they are keyed again, then venue papers are
linked again as `papershelf reindex` would.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.store import link_venues
from app.ingest.text import title_key

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rekey(conn: sa.Connection, table: str) -> int:
    t = sa.table(table, sa.column("pk", sa.Integer), sa.column("title"), sa.column("title_key"))
    rows = conn.execute(
        sa.select(t.c.pk, t.c.title, t.c.title_key).where(t.c.title.contains("\\", autoescape=True))
    ).all()
    changed = [
        {"b_pk": r.pk, "b_key": key} for r in rows if (key := title_key(r.title)) != r.title_key
    ]
    if changed:
        conn.execute(
            t.update()
            .where(t.c.pk == sa.bindparam("b_pk"))
            .values(title_key=sa.bindparam("b_key")),
            changed,
        )
    return len(changed)


def upgrade() -> None:
    conn = op.get_bind()
    if _rekey(conn, "papers") + _rekey(conn, "venue_papers"):
        link_venues(conn)


def downgrade() -> None:
    # The older keys kept styling commands' names; keys written since stay valid for
    # matching, so nothing is undone.
    pass
