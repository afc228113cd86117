"""Remove the characters XML 1.0 forbids from stored papers and venue papers.

Imports clean them since this revision (`app.ingest.records`: NUL and the other C0 controls
but tab, newline and carriage return, U+FFFE, U+FFFF); rows stored before may hold some, and
one such character made every feed showing the row malformed. A migration rather than a
command, so every store is repaired once, on its next upgrade, without anyone having to know.

Only suspect rows are read: a filter in SQL (GLOB on SQLite, a regular expression on
PostgreSQL) finds the few, then Python applies the ingest rule to them. The search index
follows the updated rows by itself (SQLite's update trigger, PostgreSQL's generated column).
Cleaning cannot be undone, so the downgrade leaves the rows as they are.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from app.ingest.text import strip_xml_illegal, title_key

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Forbidden characters a database can hold as they are (PostgreSQL refuses NUL outright).
_RAW = "[\x01-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"
# The same inside JSON text, where encoders write them as escapes; a superset (an escaped
# backslash before "b" matches too): Python decides.
_JSON_ESCAPES = r"\\u00[01][0-9a-fA-F]|\\u[fF]{3}[eEfF]|\\[bf]"
_SQLITE_JSON_GLOBS = ("*\\u00[01][0-9a-fA-F]*", "*\\u[fF][fF][fF][eEfF]*", "*\\[bf]*")

# Text columns and JSON list columns per table; the primary key is `pk` in both.
_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "papers": (
        ("title", "abstract", "comments", "journal_ref", "doi", "license"),
        ("authors", "classes"),
    ),
    "venue_papers": (
        ("venue_paper_id", "title", "abstract", "status", "track", "site", "tldr"),
        ("authors", "keywords"),
    ),
}
# Columns that may not be NULL: cleaned to "" rather than None.
_REQUIRED = frozenset({"title", "abstract", "venue_paper_id", "authors"})


def _suspect(dialect: str, texts: tuple[str, ...], lists: tuple[str, ...]) -> str:
    """A WHERE clause true for every row that may hold a forbidden character."""
    if dialect == "sqlite":
        # GLOB stops at a NUL, so NUL is looked for in the bytes.
        conds = [f"({c} GLOB :raw OR instr(CAST({c} AS BLOB), x'00') > 0)" for c in texts]
        for c in lists:
            globs = " OR ".join(f"{c} GLOB :j{i}" for i in range(len(_SQLITE_JSON_GLOBS)))
            conds.append(f"({c} GLOB :raw OR {globs})")
    else:
        conds = [f"{c} ~ :raw" for c in texts]
        conds += [f"CAST({c} AS text) ~ :json" for c in lists]
    return " OR ".join(conds)


def _line(value: str) -> str:
    # Stored text was whitespace-collapsed on import; keep it so once the characters go.
    return " ".join(strip_xml_illegal(value).split())


def _clean(column: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        cleaned = strip_xml_illegal(value).strip() if column == "venue_paper_id" else _line(value)
        return cleaned if cleaned or column in _REQUIRED else None
    if isinstance(value, list):
        items = [c for item in value if isinstance(item, str) and (c := _line(item))]
        return items if items or column in _REQUIRED else None
    return value


def _repair(conn: sa.Connection, name: str, texts: tuple[str, ...], lists: tuple[str, ...]) -> int:
    columns = (*texts, *lists)
    table = sa.table(
        name,
        sa.column("pk", sa.Integer),
        sa.column("venue", sa.Text),
        sa.column("title_key", sa.Text),
        sa.column("changed_at", sa.DateTime(timezone=True)),
        *(sa.column(c, sa.Text) for c in texts),
        *(sa.column(c, sa.JSON) for c in lists),
    )
    dialect = conn.dialect.name
    params: dict[str, str] = {"raw": f"*{_RAW}*" if dialect == "sqlite" else _RAW}
    if dialect == "sqlite":
        params.update({f"j{i}": glob for i, glob in enumerate(_SQLITE_JSON_GLOBS)})
    else:
        params["json"] = f"{_JSON_ESCAPES}|{_RAW}"
    extra = ", venue" if name == "venue_papers" else ""
    where = _suspect(dialect, texts, lists)
    query = sa.text(f"SELECT pk{extra}, {', '.join(columns)} FROM {name} WHERE {where}").columns(
        **dict.fromkeys(lists, sa.JSON)
    )
    repaired = 0
    for row in conn.execute(query, params).mappings().all():
        changed = {c: new for c in columns if (new := _clean(c, row[c])) != row[c]}
        if not changed:
            continue
        if "title" in changed:
            changed["title_key"] = title_key(changed["title"])
        if name == "papers":
            # Every index that follows papers by their change time (the full-text index of
            # revision 0010) then sees the repair too.
            changed["changed_at"] = datetime.now(UTC)
        new_id = changed.get("venue_paper_id")
        if new_id is not None:
            # The clean id is what a fresh import of the list writes; keep that row.
            taken = conn.scalar(
                sa.select(table.c.pk).where(
                    table.c.venue == row["venue"], table.c.venue_paper_id == new_id
                )
            )
            if taken is not None:
                conn.execute(table.delete().where(table.c.pk == row["pk"]))
                repaired += 1
                continue
        conn.execute(table.update().where(table.c.pk == row["pk"]).values(**changed))
        repaired += 1
    return repaired


def upgrade() -> None:
    conn = op.get_bind()
    for name, (texts, lists) in _TABLES.items():
        _repair(conn, name, texts, lists)


def downgrade() -> None:
    """Nothing to undo: the removed characters were never meant to be stored."""
