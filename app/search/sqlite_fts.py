"""SQLite FTS5 search over the external-content table `papers_fts(title, abstract, authors)`,
and the index's upkeep: new papers are indexed set-based by `SqliteFtsIndex.add` (called by
the store), updates and deletes by the migration's triggers.

The MATCH expression is compiled from the parser's tokens, and every token is emitted inside
an FTS5 double-quoted string (a `"` would be doubled), so no user text can reach FTS5's query
syntax: stray quotes, `NEAR`, `*`, `^`, column names and operators are all just text. The
expression is passed as a bind parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.sql.elements import ColumnElement

from app.search.base import SearchBackend, SearchIndex, TextMatch, papers
from app.search.query import ParsedQuery, Term

# bm25 weights, in the table's column order (title, abstract, authors): a title hit counts
# ten times an abstract hit; an author hit four times.
BM25_WEIGHTS = (10.0, 1.0, 4.0)
_COLUMN = {"title": "title", "authors": "authors", "abstract": "abstract"}

papers_fts = sa.table("papers_fts", sa.column("rowid", sa.Integer))
# The triggers that keep the index in step with updates and deletes, as migration 0001
# creates them. A deferred build drops them for the load (FTS5 would be corrupted by a delete
# of a row it never indexed) and puts them back before its rebuild.
TRIGGERS = {
    "papers_fts_ad": """CREATE TRIGGER IF NOT EXISTS papers_fts_ad AFTER DELETE ON papers BEGIN
        INSERT INTO papers_fts(papers_fts, rowid, title, abstract, authors)
        VALUES ('delete', old.pk, old.title, old.abstract, old.authors);
    END""",
    "papers_fts_au": """CREATE TRIGGER IF NOT EXISTS papers_fts_au
    AFTER UPDATE OF title, abstract, authors ON papers BEGIN
        INSERT INTO papers_fts(papers_fts, rowid, title, abstract, authors)
        VALUES ('delete', old.pk, old.title, old.abstract, old.authors);
        INSERT INTO papers_fts(rowid, title, abstract, authors)
        VALUES (new.pk, new.title, new.abstract, new.authors);
    END""",
}
_FTS: sa.ColumnClause[Any] = sa.literal_column("papers_fts")
# FTS5's in-memory term buffer ('hashsize'), in bytes: its default, and for a rebuild.
DEFAULT_HASHSIZE = 1 << 20
REBUILD_HASHSIZE = 16 << 20
_HASHSIZE = "INSERT INTO papers_fts(papers_fts, rank) VALUES ('hashsize', ?)"


def fts_string(text: str) -> str:
    """An FTS5 string literal: FTS5 tokenizes its content as a phrase, nothing more.

    Parser tokens hold only word characters; the escaping keeps any text safe regardless:
    `"` is doubled, and NUL (which ends the expression early in FTS5's C parser, leaving an
    unterminated string) becomes a separator."""
    return '"' + text.replace("\x00", " ").replace('"', '""') + '"'


def _term(term: Term) -> str:
    phrase = fts_string(" ".join(term.tokens))
    return f"{{{_COLUMN[term.field]}}} : {phrase}" if term.field else phrase


def _any(terms: tuple[Term, ...]) -> str:
    return " OR ".join(_term(t) for t in terms)


def compile_positive(query: ParsedQuery) -> str | None:
    """The FTS5 expression for the positive terms and their exclusions, or None when the
    query has no positive terms (FTS5 has no unary NOT)."""
    if not query.positive:
        return None
    expr = " AND ".join(f"({_any(group)})" for group in query.positive)
    if query.negative:
        # FTS5's NOT is binary: (everything wanted) NOT (anything unwanted).
        expr = f"({expr}) NOT ({_any(query.negative)})"
    return expr


def compile_negative(query: ParsedQuery) -> str | None:
    """The FTS5 expression matching any negative term, or None without negatives."""
    return _any(query.negative) if query.negative else None


def _match(expr: str) -> ColumnElement[bool]:
    return _FTS.op("MATCH")(sa.bindparam(None, expr, type_=sa.Text))


class SqliteFtsIndex(SearchIndex):
    """The FTS5 index. A large back-fill leaves it alone during the load (`defer`: new papers
    unindexed, the update and delete triggers dropped) and fills it with one `rebuild` after
    (`complete`). A row in `papers_fts_pending` (migration 0011), committed with the dropped
    triggers before the load starts, marks the deferred build, so an import killed midway is
    completed by the next import or `papershelf reindex`; meanwhile the index serves the
    papers it already had."""

    dialect = "sqlite"

    def pending(self, conn: Connection) -> bool:
        """Whether a deferred build of the FTS5 index is still to be done."""
        found = conn.exec_driver_sql("SELECT 1 FROM papers_fts_pending LIMIT 1").first()
        return found is not None

    def defer(self, conn: Connection) -> None:
        """Mark the index stale until `complete` (new papers are then written unindexed) and
        stop the triggers; in the caller's transaction, so both happen or neither."""
        conn.exec_driver_sql("INSERT INTO papers_fts_pending (deferred_at) VALUES (datetime())")
        for name in TRIGGERS:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")

    def complete(self, conn: Connection) -> bool:
        """Rebuild the index if a deferred build is pending; whether it did."""
        if not self.pending(conn):
            return False
        self.rebuild(conn)
        return True

    def add(self, conn: Connection, arxiv_ids: Sequence[str]) -> None:
        """Index new rows in one statement: a per-row insert trigger made the 50k-paper
        import 1.6x slower."""
        if not arxiv_ids:
            return
        conn.exec_driver_sql(
            "INSERT INTO papers_fts(rowid, title, abstract, authors)"
            " SELECT pk, title, abstract, authors FROM papers"
            " WHERE arxiv_id IN (SELECT value FROM json_each(?))",
            (orjson.dumps(list(arxiv_ids)).decode(),),
        )

    def rebuild(self, conn: Connection) -> None:
        """Re-read every row of `papers` into the FTS index (the triggers normally keep it in
        step; this repairs it after, e.g., a bulk load with the triggers dropped), and put back
        the triggers a deferred build dropped."""
        for sql in TRIGGERS.values():
            conn.exec_driver_sql(sql)
        # A larger in-memory term buffer for the one big transaction: fewer, larger segments
        # to merge (about 20% faster at 50k papers); back to FTS5's default afterwards, so
        # everyday writes keep their small footprint.
        conn.exec_driver_sql(_HASHSIZE, (REBUILD_HASHSIZE,))
        conn.exec_driver_sql("INSERT INTO papers_fts(papers_fts) VALUES('rebuild')")
        conn.exec_driver_sql(_HASHSIZE, (DEFAULT_HASHSIZE,))
        conn.exec_driver_sql("DELETE FROM papers_fts_pending")


class SqliteFtsBackend(SearchBackend):
    dialect = "sqlite"
    index = SqliteFtsIndex()

    def text_match(self, query: ParsedQuery) -> TextMatch:
        expr = compile_positive(query)
        if expr is None:
            raise ValueError("text_match needs a query with positive terms")
        weights = ", ".join(str(w) for w in BM25_WEIGHTS)
        # bm25() is lower-is-better; negate it so every backend's score is higher-is-better.
        score = sa.literal_column(f"-bm25(papers_fts, {weights})", sa.Float)
        return TextMatch(
            from_=papers_fts.join(papers, papers.c.pk == papers_fts.c.rowid),
            where=_match(expr),
            score=score,
            key=papers_fts.c.rowid,
            bare_from=papers_fts,
        )

    def excluded(self, query: ParsedQuery) -> ColumnElement[bool]:
        expr = compile_negative(query)
        if expr is None:
            raise ValueError("excluded needs a query with negative terms")
        matching = sa.select(papers_fts.c.rowid).where(_match(expr))
        return papers.c.pk.in_(matching)
