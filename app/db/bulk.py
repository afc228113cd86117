"""The PostgreSQL bulk write: a prepared batch is streamed with COPY into session-local staging
tables and merged into the store with a few set-based statements, instead of one upsert per
row. Same rules as `app.db.store.write`, by construction: the paper merge reuses the store's
`ON CONFLICT` clause, and the rows it sends are exactly those the row-by-row path would send
(new papers, and papers whose version is newer or whose content changed), in the same order,
so even the generated primary keys come out the same.

A value the database refuses (a COPY that fails to parse a column, a string too long) raises
SQLAlchemy's `DataError`, as the row-by-row path does, so the importer can fall back to it
for that page. Each call runs in the caller's transaction: the page lands whole or not at all.

Also here: the store's own per-row-expensive structures that a large back-fill may drop and
build once afterwards (`DEFERRABLE_INDEXES`; the GIN index is the search package's).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DataError

from app.db.store import (
    LINK_COLUMNS,
    PAPER_COLUMNS,
    PAPER_ON_CONFLICT,
    REVISION_COPY,
    VERSION_ON_CONFLICT,
    PreparedBatch,
    UpsertCounts,
    link_rows,
)

# Staging tables: column types copied from the store's tables (so COPY refuses exactly what
# an INSERT would), no constraints, emptied at every commit, private to the session.
_STAGING = {
    "bulk_papers": ("papers", PAPER_COLUMNS),
    "bulk_versions": ("paper_versions", ("arxiv_id", "version", "submitted_at", "size")),
    "bulk_announcements": (
        "announcements",
        ("category", "day", "arxiv_id", "kind", "position"),
    ),
}
_ORDER = "bulk_ord"

# The row-by-row path writes a paper only when it is new or would change (app.db.store.write);
# sending only those rows keeps the sequence behind `papers.pk` in step with that path.
_CHOSEN = (
    "p.arxiv_id IS NULL"
    " OR COALESCE(s.version, 0) > COALESCE(p.version, 0)"
    " OR (COALESCE(s.version, 0) = COALESCE(p.version, 0) AND s.content_hash <> p.content_hash)"
)
_COLUMNS = ", ".join(PAPER_COLUMNS)
_PAPER_MERGE = (
    f"INSERT INTO papers ({_COLUMNS})"
    f" SELECT {', '.join(f's.{c}' for c in PAPER_COLUMNS)}"
    " FROM pg_temp.bulk_papers s LEFT JOIN papers p ON p.arxiv_id = s.arxiv_id"
    f" WHERE {_CHOSEN} ORDER BY s.{_ORDER} {PAPER_ON_CONFLICT}"
    # xmax is 0 on a freshly inserted row version and set on one an upsert updated.
    " RETURNING papers.arxiv_id, (papers.xmax = 0) AS inserted"
)
# The text of each paper a newer staged version replaces, kept before the merge overwrites it.
_REVISION_COPY = REVISION_COPY.format(
    replaced_at="s.changed_at",
    source=" JOIN pg_temp.bulk_papers s ON s.arxiv_id = p.arxiv_id",
    where=f"COALESCE(s.version, 0) > COALESCE(p.version, 0) ORDER BY s.{_ORDER}",
)
_VERSION_MERGE = (
    "INSERT INTO paper_versions (arxiv_id, version, submitted_at, size)"
    " SELECT arxiv_id, version, submitted_at, size FROM pg_temp.bulk_versions"
    f" ORDER BY {_ORDER} {VERSION_ON_CONFLICT}"
)
_ANNOUNCEMENT_MERGE = (
    "INSERT INTO announcements (category, day, arxiv_id, kind, position)"
    " SELECT category, day, arxiv_id, kind, position FROM pg_temp.bulk_announcements"
    f" ORDER BY {_ORDER} ON CONFLICT DO NOTHING"
)


def _ensure_staging(cur: Any) -> None:
    cur.execute("SELECT relname FROM pg_class WHERE relnamespace = pg_my_temp_schema()")
    present = {row[0] for row in cur.fetchall()}
    for name, (table, columns) in _STAGING.items():
        if name in present:
            continue
        cur.execute(
            f"CREATE TEMP TABLE {name} ON COMMIT DELETE ROWS AS"
            f" SELECT {', '.join(columns)}, 0 AS {_ORDER} FROM {table} WITH NO DATA"
        )


def _copy(cur: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def write(conn: Connection, batch: PreparedBatch) -> UpsertCounts:
    """Write a prepared batch in the caller's transaction through COPY and set-based merges;
    the same rows, rules and counts as `app.db.store.write` (PostgreSQL only)."""
    import psycopg  # the driver behind every PostgreSQL engine (app.db.engine)

    counts = UpsertCounts()
    if not batch.papers:
        return counts
    if conn.dialect.name != "postgresql" or batch.dialect != "postgresql":
        raise ValueError("the bulk write is for PostgreSQL batches and connections")
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    statement = "COPY into the staging tables"
    try:
        _ensure_staging(cur)
        _copy(
            cur,
            "pg_temp.bulk_papers",
            (*PAPER_COLUMNS, _ORDER),
            ((*row, i) for i, row in enumerate(batch.papers)),
        )
        _copy(
            cur,
            "pg_temp.bulk_versions",
            (*_STAGING["bulk_versions"][1], _ORDER),
            ((*row, i) for i, row in enumerate(batch.versions)),
        )
        _copy(
            cur,
            "pg_temp.bulk_announcements",
            (*_STAGING["bulk_announcements"][1], _ORDER),
            ((*row, i) for i, row in enumerate(batch.announcements)),
        )
        statement = _REVISION_COPY
        cur.execute(_REVISION_COPY)
        statement = _PAPER_MERGE
        cur.execute(_PAPER_MERGE)
        written = cur.fetchall()
        new_ids = [arxiv_id for arxiv_id, inserted in written if inserted]
        updated_ids = [arxiv_id for arxiv_id, inserted in written if not inserted]
        counts.inserted, counts.updated = len(new_ids), len(updated_ids)
        counts.unchanged = len(batch.papers) - len(written)
        counts.written_ids = new_ids + updated_ids

        # Categories follow the metadata just written: an updated paper's old rows go, and
        # no written paper has rows left, so the new ones are copied straight in.
        if updated_ids:
            statement = "DELETE FROM paper_categories"
            cur.execute("DELETE FROM paper_categories WHERE arxiv_id = ANY(%s)", (updated_ids,))
        statement = "COPY paper_categories"
        _copy(
            cur,
            "paper_categories",
            ("category", "arxiv_id"),
            (
                (category, arxiv_id)
                for arxiv_id in counts.written_ids
                for category in dict.fromkeys(batch.categories[arxiv_id])
            ),
        )
        statement = _VERSION_MERGE
        cur.execute(_VERSION_MERGE)
        statement = _ANNOUNCEMENT_MERGE
        cur.execute(_ANNOUNCEMENT_MERGE)
        counts.announcements = max(cur.rowcount, 0)
        # Badges follow the text just merged (the row path's rule); a new paper has no row.
        if updated_ids:
            statement = "DELETE FROM paper_links"
            cur.execute("DELETE FROM paper_links WHERE arxiv_id = ANY(%s)", (updated_ids,))
        statement = "COPY paper_links"
        _copy(cur, "paper_links", LINK_COLUMNS, link_rows(conn, batch, new_ids, updated_ids))
    except psycopg.DataError as exc:
        # The row-by-row path's error type, so the importer handles both alike.
        raise DataError(statement, None, exc) from exc
    finally:
        cur.close()
    return counts


# Secondary indexes a large back-fill drops and builds once after the load. A title's
# normalised key is random, so each insert lands on a random page of its B-tree: at millions
# of papers that page is rarely cached and each one costs a full-page image in the WAL.
# The definitions are migration 0001's (a test compares them).
DEFERRABLE_INDEXES = {
    "ix_papers_title_key": "CREATE INDEX IF NOT EXISTS ix_papers_title_key ON papers (title_key)",
}


def defer_indexes(conn: Connection) -> None:
    """Drop the deferrable indexes (PostgreSQL), in the caller's transaction."""
    for name in DEFERRABLE_INDEXES:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")


def complete_indexes(conn: Connection) -> bool:
    """Build whichever deferrable index is missing; whether any was."""
    built = False
    for name, ddl in DEFERRABLE_INDEXES.items():
        if conn.exec_driver_sql("SELECT to_regclass(%(name)s) IS NULL", {"name": name}).scalar():
            conn.exec_driver_sql(ddl)
            built = True
    return built
