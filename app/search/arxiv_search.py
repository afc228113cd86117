"""Answers an arXiv API query (`app.search.arxiv_query`'s tree, an `id_list`, paging and
sorting) from the papers this instance holds, on SQLite and PostgreSQL.

The tree becomes one statement. Word and phrase terms in `ti`, `au`, `abs` and `all` run on
the database's full-text index: on SQLite the largest subtrees made only of them compile to
one FTS5 MATCH expression (FTS5 has AND, OR and NOT itself), on PostgreSQL to one tsquery
against the GIN-indexed `search_vector` (`ANDNOT` as SQL NOT, so a stop-word-only tsquery
never turns into "everything"). When the whole query is that index match AND other terms,
the match drives the statement and gives the relevance score (bm25 / ts_rank); otherwise each
index match is a `pk IN (...)` / `@@` predicate beside the others. `cat:` is an index probe
on paper_categories, `id:` one on the arXiv id, dates compare the v1 / latest-version
timestamps, and `co:`/`jr:` are case-insensitive substring matches (these two columns have no
full-text index: slower on a large store). Terms only ever reach SQL as bind parameters or
as the escaped index tokens the backends already compile (`app.search.sqlite_fts`,
`app.search.postgres`), and a tree is bounded by the parser (`MAX_TERMS`, `MAX_DEPTH`).

Relevance without any index term orders by submission date. `totalResults` counts at most
`MAX_REACH` matches: no client can page further.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from app.db.models import PaperVersion
from app.search import postgres, sqlite_fts
from app.search.arxiv_query import (
    And,
    AndNot,
    Category,
    DateRange,
    Identifier,
    ListedId,
    Node,
    Nothing,
    Or,
    Text,
)
from app.search.base import paper_categories, papers
from app.search.query import Field, Term

SortBy = Literal["relevance", "lastUpdatedDate", "submittedDate"]
SortOrder = Literal["ascending", "descending"]
SORT_BY: tuple[SortBy, ...] = ("relevance", "lastUpdatedDate", "submittedDate")
SORT_ORDER: tuple[SortOrder, ...] = ("ascending", "descending")
#: arXiv's limits: at most this many results per call, and start + max_results at most MAX_REACH.
MAX_PAGE = 2000
MAX_REACH = 30_000

versions = PaperVersion.__table__
_INDEXED: dict[str, Field | None] = {"all": None, "ti": "title", "au": "authors", "abs": "abstract"}
_LIKE_COLUMN = {"co": papers.c.comments, "jr": papers.c.journal_ref}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ArxivEntry:
    """One answer, as the Atom entry shows it."""

    arxiv_id: str
    version: int | None  # the version this entry stands for; None when no source said
    title: str
    abstract: str
    authors: tuple[str, ...]
    primary_category: str
    categories: tuple[str, ...]
    classes: tuple[str, ...]
    comments: str | None
    journal_ref: str | None
    doi: str | None
    published: datetime  # v1
    updated: datetime  # this version


@dataclass(frozen=True, slots=True)
class ArxivPage:
    entries: tuple[ArxivEntry, ...]
    total: int
    start: int


# --- compiling the tree -------------------------------------------------------------------


@dataclass(slots=True)
class _Compiled:
    """`fts` (the backend's index match, None when there is none) AND every `sql` part."""

    fts: Any = None
    sql: list[ColumnElement[bool]] = field(default_factory=list)

    @property
    def pure_fts(self) -> bool:
        return self.fts is not None and not self.sql


class _Dialect(ABC):
    sqlite: bool

    @abstractmethod
    def term(self, term: Term) -> Any: ...

    @abstractmethod
    def all_of(self, parts: list[Any]) -> Any: ...

    @abstractmethod
    def any_of(self, parts: list[Any]) -> Any: ...

    def but_not(self, left: Any, right: Any) -> Any | None:
        """`left` without `right` inside the index match, or None where the index cannot."""
        return None

    @abstractmethod
    def matches(self, fts: Any) -> ColumnElement[bool]:
        """The index match as a predicate on `papers`."""

    @abstractmethod
    def driving(self, fts: Any) -> tuple[FromClause, ColumnElement[bool], ColumnElement[float]]:
        """FROM, WHERE and score for a statement the index match drives."""

    def stamp(self, value: datetime) -> datetime:
        return value

    @abstractmethod
    def listing_day(self) -> ColumnElement[Any]:
        """`papers.sort_date` as a timestamp (midnight UTC), comparable with the stored ones."""

    def submitted(self) -> ColumnElement[Any]:
        """When v1 was submitted; the listing day where no source said (RSS and listing
        files carry none), the same stand-in as the entries' `published`."""
        return sa.func.coalesce(
            papers.c.first_submitted_at, self.listing_day(), type_=papers.c.first_submitted_at.type
        )

    def updated(self) -> ColumnElement[Any]:
        return sa.func.coalesce(
            papers.c.last_updated_at, self.submitted(), type_=papers.c.last_updated_at.type
        )


class _Sqlite(_Dialect):
    sqlite = True

    def term(self, term: Term) -> str:
        return sqlite_fts._term(term)

    def all_of(self, parts: list[Any]) -> str:
        return " AND ".join(f"({p})" for p in parts)

    def any_of(self, parts: list[Any]) -> str:
        return " OR ".join(f"({p})" for p in parts)

    def but_not(self, left: Any, right: Any) -> str:
        return f"({left}) NOT ({right})"

    def matches(self, fts: Any) -> ColumnElement[bool]:
        inner = sa.select(sqlite_fts.papers_fts.c.rowid).where(sqlite_fts._match(fts))
        return papers.c.pk.in_(inner)

    def driving(self, fts: Any) -> tuple[FromClause, ColumnElement[bool], ColumnElement[float]]:
        table = sqlite_fts.papers_fts
        weights = ", ".join(str(w) for w in sqlite_fts.BM25_WEIGHTS)
        score = sa.literal_column(f"-bm25(papers_fts, {weights})", sa.Float)
        joined = table.join(papers, papers.c.pk == table.c.rowid)
        return joined, sqlite_fts._match(fts), score

    def stamp(self, value: datetime) -> datetime:
        # The store keeps naive UTC in SQLite (SQLAlchemy's format); compare like with like.
        return value.astimezone(UTC).replace(tzinfo=None)

    def listing_day(self) -> ColumnElement[Any]:
        # SQLAlchemy stores a SQLite DateTime as "YYYY-MM-DD HH:MM:SS.ffffff" text.
        return papers.c.sort_date.op("||")(sa.literal(" 00:00:00.000000"))


class _Postgres(_Dialect):
    sqlite = False

    def listing_day(self) -> ColumnElement[Any]:
        # Midnight UTC whatever the session's time zone.
        return sa.func.timezone("UTC", sa.cast(papers.c.sort_date, sa.DateTime()))

    def term(self, term: Term) -> ColumnElement[Any]:
        return postgres._term(term)

    def all_of(self, parts: list[Any]) -> ColumnElement[Any]:
        return postgres._all(parts)

    def any_of(self, parts: list[Any]) -> ColumnElement[Any]:
        return postgres._either(parts)

    def matches(self, fts: Any) -> ColumnElement[bool]:
        return postgres._matches(fts)

    def driving(self, fts: Any) -> tuple[FromClause, ColumnElement[bool], ColumnElement[float]]:
        score = sa.func.ts_rank(
            sa.literal_column(f"'{postgres.RANK_WEIGHTS}'::float4[]"),
            postgres.search_vector,
            fts,
            type_=sa.Float,
        )
        return papers, postgres._matches(fts), score


def _dialect(conn: Connection) -> _Dialect:
    name = conn.dialect.name
    if name == "sqlite":
        return _Sqlite()
    if name == "postgresql":
        return _Postgres()
    raise ValueError(f"no arXiv query support for database dialect {name!r}")


def _as_sql(d: _Dialect, c: _Compiled) -> ColumnElement[bool]:
    parts = [d.matches(c.fts)] if c.fts is not None else []
    return sa.and_(*parts, *c.sql) if len(parts) + len(c.sql) > 1 else (parts + c.sql)[0]


def _compile(d: _Dialect, node: Node) -> _Compiled:
    if isinstance(node, And):
        kids = [_compile(d, c) for c in node.children]
        fts = [k.fts for k in kids if k.fts is not None]
        return _Compiled(
            d.all_of(fts) if len(fts) > 1 else (fts[0] if fts else None),
            [p for k in kids for p in k.sql],
        )
    if isinstance(node, Or):
        kids = [_compile(d, c) for c in node.children]
        if all(k.pure_fts for k in kids):
            return _Compiled(d.any_of([k.fts for k in kids]))
        return _Compiled(None, [sa.or_(*(_as_sql(d, k) for k in kids))])
    if isinstance(node, AndNot):
        left, right = _compile(d, node.left), _compile(d, node.right)
        if left.fts is not None and right.pure_fts:
            inside = d.but_not(left.fts, right.fts)
            if inside is not None:
                return _Compiled(inside, left.sql)
        return _Compiled(left.fts, [*left.sql, sa.not_(_as_sql(d, right))])
    return _leaf(d, node)


def _leaf(d: _Dialect, leaf: Node) -> _Compiled:
    if isinstance(leaf, Text):
        if leaf.field in _INDEXED:
            return _Compiled(d.term(Term(leaf.tokens, _INDEXED[leaf.field])))
        # Tokens hold only letters and digits: no LIKE wildcard can come from the user.
        pattern = "%" + "%".join(leaf.tokens) + "%"
        return _Compiled(None, [sa.func.lower(_LIKE_COLUMN[leaf.field]).like(pattern)])
    if isinstance(leaf, Category):
        listed = sa.exists().where(
            paper_categories.c.arxiv_id == papers.c.arxiv_id,
            paper_categories.c.category.in_(list(leaf.categories)),
        )
        return _Compiled(None, [listed])
    if isinstance(leaf, Identifier):
        return _Compiled(None, [papers.c.arxiv_id == leaf.arxiv_id])
    if isinstance(leaf, DateRange):
        column = d.updated() if leaf.field == "lastUpdatedDate" else d.submitted()
        bounds = []
        if leaf.start is not None:
            bounds.append(column >= d.stamp(leaf.start))
        if leaf.end is not None:
            bounds.append(column < d.stamp(leaf.end))
        return _Compiled(None, [sa.and_(*bounds)] if bounds else [column.is_not(None)])
    if isinstance(leaf, Nothing):
        return _Compiled(None, [sa.false()])
    raise TypeError(f"not a query node: {leaf!r}")


# --- running it ---------------------------------------------------------------------------

_COLUMNS = (
    papers.c.arxiv_id,
    papers.c.version,
    papers.c.title,
    papers.c.abstract,
    papers.c.authors,
    papers.c.primary_category,
    papers.c.categories,
    papers.c.classes,
    papers.c.comments,
    papers.c.journal_ref,
    papers.c.doi,
    papers.c.first_submitted_at,
    papers.c.last_updated_at,
    papers.c.sort_date,
)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _entry(row: Any, version: int | None = None, at: datetime | None = None) -> ArxivEntry:
    published = _aware(row.first_submitted_at)
    if published is None:
        # No source gave a submission time: the listing day stands in (Atom needs one).
        published = (
            datetime.combine(row.sort_date, datetime.min.time(), UTC) if row.sort_date else _EPOCH
        )
    updated = _aware(at) or _aware(row.last_updated_at) or published
    return ArxivEntry(
        arxiv_id=row.arxiv_id,
        version=version if version is not None else row.version,
        title=row.title,
        abstract=row.abstract,
        authors=tuple(row.authors or ()),
        primary_category=row.primary_category,
        categories=tuple(row.categories or ()),
        classes=tuple(row.classes or ()),
        comments=row.comments,
        journal_ref=row.journal_ref,
        doi=row.doi,
        published=published,
        updated=updated,
    )


def _date_key(d: _Dialect, sort_by: SortBy) -> ColumnElement[Any]:
    return d.updated() if sort_by == "lastUpdatedDate" else d.submitted()


def _rank_window() -> int:
    from app.settings import get_settings

    return get_settings().search_rank_window


def run_query(
    conn: Connection,
    node: Node | None,
    id_list: Sequence[ListedId] = (),
    *,
    sort_by: SortBy = "relevance",
    sort_order: SortOrder = "descending",
    start: int = 0,
    max_results: int = 10,
    rank_window: int | None = None,
) -> ArxivPage:
    """One page of the answer. `id_list` alone: those papers (in the list's order under
    relevance); with a query: the listed papers that match it; neither: nothing.

    Relevance scores only the newest `rank_window` matches (`PAPERSHELF_SEARCH_RANK_WINDOW`,
    as the database engine): a common word matches most of a large store, and scoring
    every match costs seconds. Below the window the order is exact; above it the window's
    matches come first, best first, then the older matches newest first, so paging still
    reaches every match and the total is unchanged."""
    d = _dialect(conn)
    compiled = _compile(d, node) if node is not None else _Compiled()
    if compiled.fts is not None:
        source, match, score = d.driving(compiled.fts)
        where = [match, *compiled.sql]
    else:
        source, score = papers, None
        where = list(compiled.sql)
    if id_list:
        return _listed(conn, source, where, score, id_list, sort_by, sort_order, start, max_results)
    if node is None:
        return ArxivPage((), 0, start)

    total = conn.execute(_counted(d, compiled, source, where)).scalar_one()
    entries: tuple[ArxivEntry, ...] = ()
    if max_results > 0 and start < total:
        descending = sort_order == "descending"
        if sort_by == "relevance" and score is not None:
            window = rank_window if rank_window is not None else _rank_window()
            rows = _ranked(
                conn, d, compiled, source, where, score, descending, start, max_results, window
            )
        else:
            rows = _by_date(conn, d, source, where, sort_by, descending, start, max_results)
        entries = tuple(_entry(r) for r in rows)
    return ArxivPage(entries, total, start)


def _by_date(
    conn: Connection,
    d: _Dialect,
    source: FromClause,
    where: list[ColumnElement[bool]],
    sort_by: SortBy,
    descending: bool,
    start: int,
    size: int,
) -> list[Any]:
    """A date-ordered page (ties by id): the matches' keys are sorted, papers rows read for
    the page alone (sorting whole rows, abstracts and all, cost more than the match)."""
    key = _date_key(d, sort_by)
    ordered = (
        sa.select(papers.c.pk.label("pk"), key.label("at"), papers.c.arxiv_id.label("aid"))
        .select_from(source)
        .where(*where)
        .order_by(
            (key.desc() if descending else key.asc()).nulls_last(),
            papers.c.arxiv_id.desc() if descending else papers.c.arxiv_id.asc(),
        )
        .limit(size)
        .offset(start)
        .subquery("ordered")
    )
    at = ordered.c.at.desc() if descending else ordered.c.at.asc()
    aid = ordered.c.aid.desc() if descending else ordered.c.aid.asc()
    page = (
        sa.select(*_COLUMNS)
        .select_from(ordered.join(papers, papers.c.pk == ordered.c.pk))
        .order_by(at.nulls_last(), aid)
    )
    return list(conn.execute(page))


def _counted(
    d: _Dialect, compiled: _Compiled, source: FromClause, where: list[ColumnElement[bool]]
) -> sa.Select[Any]:
    """The number of matches, up to `MAX_REACH`. On SQLite a pure index match is counted
    in the FTS table alone: no papers row is read."""
    if d.sqlite and compiled.pure_fts:
        table = sqlite_fts.papers_fts
        inner = sa.select(table.c.rowid).where(sqlite_fts._match(compiled.fts))
    else:
        inner = sa.select(papers.c.pk).select_from(source).where(*where)
    return sa.select(sa.func.count()).select_from(inner.limit(MAX_REACH).subquery())


def _ranked(
    conn: Connection,
    d: _Dialect,
    compiled: _Compiled,
    source: FromClause,
    where: list[ColumnElement[bool]],
    score: ColumnElement[float],
    descending: bool,
    start: int,
    size: int,
    window: int,
) -> list[Any]:
    """A relevance page: the newest `window` matches by score (ties by id), then the older
    matches by pk (the order papers were stored), as `run_query` describes. Only the
    window's pks and scores are sorted; papers rows are read for the page alone."""
    # The index's own rowid on SQLite, walked newest first without reading papers rows.
    key = sqlite_fts.papers_fts.c.rowid if d.sqlite else papers.c.pk
    ranked = (
        sa.select(key.label("pk"), score.label("score"), papers.c.arxiv_id.label("aid"))
        .select_from(source)
        .where(*where)
        .order_by(key.desc())
        .limit(max(window, 1))
        .subquery("ranked")
    )
    order = (
        [ranked.c.score.desc(), ranked.c.aid.desc()]
        if descending
        else [ranked.c.score.asc(), ranked.c.aid.asc()]
    )
    best = (
        sa.select(ranked.c.pk, ranked.c.score, ranked.c.aid)
        .order_by(*order)
        .limit(size)
        .offset(start)
        .subquery("best")
    )
    page_order = (
        [best.c.score.desc(), best.c.aid.desc()]
        if descending
        else [best.c.score.asc(), best.c.aid.asc()]
    )
    rows = list(
        conn.execute(
            sa.select(*_COLUMNS)
            .select_from(best.join(papers, papers.c.pk == best.c.pk))
            .order_by(*page_order)
        )
    )
    if len(rows) == size or window <= 0:
        return rows
    # The page runs past the window: the older matches follow, in stored order.
    in_window = conn.execute(
        sa.select(sa.func.count(), sa.func.min(ranked.c.pk)).select_from(ranked)
    ).one()
    if in_window[0] < window:
        return rows  # the window held every match
    skip = max(0, start - in_window[0])
    rest = (
        sa.select(*_COLUMNS)
        .select_from(source)
        .where(*where, key < in_window[1])
        .order_by(key.desc() if descending else key.asc())
        .limit(size - len(rows))
        .offset(skip)
    )
    return rows + list(conn.execute(rest))


def _listed(
    conn: Connection,
    source: FromClause,
    where: list[ColumnElement[bool]],
    score: ColumnElement[float] | None,
    id_list: Sequence[ListedId],
    sort_by: SortBy,
    sort_order: SortOrder,
    start: int,
    max_results: int,
) -> ArxivPage:
    """Entries for the listed ids (bounded by the list's length, so sorted here)."""
    wanted = sorted({item.arxiv_id for item in id_list if item.arxiv_id is not None})
    if not wanted:
        return ArxivPage((), 0, start)
    columns: list[Any] = [*_COLUMNS, (score if score is not None else sa.null()).label("score")]
    rows = {
        r.arxiv_id: r
        for r in conn.execute(
            sa.select(*columns).select_from(source).where(*where, papers.c.arxiv_id.in_(wanted))
        )
    }
    older = [
        (item.arxiv_id, item.version)
        for item in id_list
        if item.arxiv_id in rows and item.version is not None
    ]
    stamps: dict[tuple[str, int], datetime | None] = {}
    if older:
        found = conn.execute(
            sa.select(versions.c.arxiv_id, versions.c.version, versions.c.submitted_at).where(
                versions.c.arxiv_id.in_(sorted({a for a, _ in older}))
            )
        )
        stamps = {(r.arxiv_id, r.version): r.submitted_at for r in found}

    items: list[tuple[int, Any, ArxivEntry]] = []
    for position, item in enumerate(id_list):
        row = rows.get(item.arxiv_id or "")
        if row is None:
            continue
        if item.version is None:
            items.append((position, row, _entry(row)))
            continue
        held = row.version
        if held is not None and item.version > held and (row.arxiv_id, item.version) not in stamps:
            continue  # a version this instance has not seen
        at = stamps.get((row.arxiv_id, item.version))
        if at is None and item.version != held:
            at = row.first_submitted_at if item.version == 1 else None
        items.append((position, row, _entry(row, item.version, at)))

    descending = sort_order == "descending"
    if sort_by == "relevance":
        if score is not None:
            # Best first (descending), ties in the list's order.
            sign = -1 if descending else 1
            items.sort(key=lambda it: (sign * float(it[1].score or 0.0), it[0]))
    else:
        attr = "updated" if sort_by == "lastUpdatedDate" else "published"
        items.sort(key=lambda it: (getattr(it[2], attr), it[2].arxiv_id), reverse=descending)
    total = len(items)
    entries = tuple(e for _, _, e in items[start : start + max_results])
    return ArxivPage(entries, total, start)
