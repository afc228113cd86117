"""PostgreSQL search over the generated, GIN-indexed column `papers.search_vector`:
title weighted A and abstract C (both 'english', stemmed), authors B ('simple', unstemmed).

Each parsed term becomes one `to_tsquery(config, :text)` call whose text is built only from
the parser's tokens, each a quoted lexeme (`'word':A`), so it is always valid tsquery syntax;
the text travels as a bind parameter. The calls are combined with `tsquery_and` /
`tsquery_or` (the functions behind `&&` / `||`), because a term needs both configurations:
title/abstract words are stemmed ('english') while author names are indexed unstemmed
('simple') -- "Hastings" stems to 'hast' but is indexed as 'hastings' in the authors.

A term that is only stop words ("the") compiles to an empty tsquery, which PostgreSQL drops
from AND/OR; a query left empty matches nothing (unlike SQLite, which has no stop words).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import TSQUERY, TSVECTOR
from sqlalchemy.sql.elements import ColumnElement

from app.search.base import SearchBackend, SearchIndex, TextMatch, papers
from app.search.query import ParsedQuery, Term

# ts_rank weights for {D, C, B, A}: abstract 0.2, authors 0.4, title 1.0.
RANK_WEIGHTS = "{0.1, 0.2, 0.4, 1.0}"
SEARCH_INDEX = "ix_papers_search_vector"
BUILD_MEMORY_MB = 256
# As migration 0001 creates it (a test compares the two definitions).
SEARCH_INDEX_DDL = f"CREATE INDEX IF NOT EXISTS {SEARCH_INDEX} ON papers USING gin (search_vector)"

# The model does not map the generated column; it exists only in the migration.
search_vector = sa.literal_column("papers.search_vector", TSVECTOR)
_ENGLISH: sa.ColumnClause[str] = sa.literal_column("'english'::regconfig")
_SIMPLE: sa.ColumnClause[str] = sa.literal_column("'simple'::regconfig")
# Weight labels a term may match: a bare word searches title and abstract with the stemmed
# form (and the authors separately, unstemmed); the labels keep the configurations apart.
_ENGLISH_WEIGHTS = {None: "AC", "title": "A", "abstract": "C"}


def lexeme(token: str, weights: str) -> str:
    """A quoted tsquery operand: quotes doubled, backslashes escaped, NUL (which PostgreSQL
    text cannot hold) dropped. Parser tokens contain none of these; this keeps the text valid
    whatever it is given."""
    token = token.replace("\x00", "").replace("\\", "\\\\").replace("'", "''")
    return "'" + token + "':" + weights


def tsquery_text(term: Term, weights: str) -> str:
    """`'a':W <-> 'b':W` for a phrase, `'a':W` for a word."""
    return " <-> ".join(lexeme(t, weights) for t in term.tokens)


def _to_tsquery(config: ColumnElement[str], text: str) -> ColumnElement[str]:
    return sa.func.to_tsquery(config, sa.bindparam(None, text, type_=sa.Text), type_=TSQUERY)


def _term(term: Term) -> ColumnElement[str]:
    parts = []
    if term.field in _ENGLISH_WEIGHTS:
        parts.append(_to_tsquery(_ENGLISH, tsquery_text(term, _ENGLISH_WEIGHTS[term.field])))
    if term.field in (None, "authors"):
        parts.append(_to_tsquery(_SIMPLE, tsquery_text(term, "B")))
    return _either(parts)


def _either(parts: list[ColumnElement[str]]) -> ColumnElement[str]:
    return reduce(lambda a, b: sa.func.tsquery_or(a, b, type_=TSQUERY), parts)


def _all(parts: list[ColumnElement[str]]) -> ColumnElement[str]:
    return reduce(lambda a, b: sa.func.tsquery_and(a, b, type_=TSQUERY), parts)


def compile_positive(query: ParsedQuery) -> ColumnElement[str] | None:
    """The tsquery expression every result must match (without the exclusions)."""
    if not query.positive:
        return None
    return _all([_either([_term(t) for t in group]) for group in query.positive])


def compile_negative(query: ParsedQuery) -> ColumnElement[str] | None:
    """The tsquery expression matching any excluded term."""
    if not query.negative:
        return None
    return _either([_term(t) for t in query.negative])


def _matches(tsquery: ColumnElement[str]) -> ColumnElement[bool]:
    return search_vector.op("@@", return_type=sa.Boolean)(tsquery)


class PostgresIndex(SearchIndex):
    """The GIN index over `search_vector`. A large back-fill drops it (`defer`) and builds it
    once after the load (`complete`): maintained row by row, it is most of an import's time.
    Its absence is the marker of a deferred build, so an import killed midway leaves a store
    that still answers every search (by scanning, slower) and says what is left to do."""

    dialect = "postgresql"

    def add(self, conn: Connection, arxiv_ids: Sequence[str]) -> None:
        """Nothing to do: `search_vector` is a generated column PostgreSQL computes on every
        write, and the GIN index follows it."""

    def pending(self, conn: Connection) -> bool:
        """Whether a deferred build of the GIN index is still to be done."""
        found = conn.exec_driver_sql(
            "SELECT to_regclass(%(name)s) IS NULL", {"name": SEARCH_INDEX}
        ).scalar()
        return bool(found)

    def defer(self, conn: Connection) -> None:
        """Drop the GIN index until `complete`; takes a brief exclusive lock on `papers`."""
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {SEARCH_INDEX}")

    def complete(self, conn: Connection) -> bool:
        """Build the GIN index if a deferred build left it missing; whether it did. Reads go on
        meanwhile; writes to `papers` wait for it."""
        if not self.pending(conn):
            return False
        # GIN builds collect their entries in maintenance_work_mem; at millions of papers the
        # 64 MB default spills into many more passes.
        conn.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY_MB}MB'")
        conn.exec_driver_sql(SEARCH_INDEX_DDL)
        return True

    def rebuild(self, conn: Connection) -> None:
        """REINDEX the GIN index (or build it, where a deferred build left it missing). The
        tsvector itself is a generated column PostgreSQL keeps current on every write, so this
        only compacts a bloated index; it locks out writes, and searches using the index,
        while it runs."""
        if not self.complete(conn):
            conn.exec_driver_sql(f"REINDEX INDEX {SEARCH_INDEX}")


class PostgresBackend(SearchBackend):
    dialect = "postgresql"
    index = PostgresIndex()

    def text_match(self, query: ParsedQuery) -> TextMatch:
        positive = compile_positive(query)
        if positive is None:
            raise ValueError("text_match needs a query with positive terms")
        # `search_vector @@ q` is what the GIN index serves. Exclusions are a separate
        # NOT (...): folding them into q as `q && !!n` would turn a stop-word-only q into a
        # bare `!n`, which matches nearly every paper.
        where = _matches(positive)
        if query.negative:
            where = sa.and_(where, sa.not_(self.excluded(query)))
        score = sa.func.ts_rank(
            sa.literal_column(f"'{RANK_WEIGHTS}'::float4[]"),
            search_vector,
            positive,
            type_=sa.Float,
        )
        return TextMatch(from_=papers, where=where, score=score, key=papers.c.pk)

    def excluded(self, query: ParsedQuery) -> ColumnElement[bool]:
        negative = compile_negative(query)
        if negative is None:
            raise ValueError("excluded needs a query with negative terms")
        return _matches(negative)
