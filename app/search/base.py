"""The search-backend interface, its result types and the filtering/paging both share, and
the search-index interface (what keeps an index in step with the papers table).

A backend turns a `ParsedQuery` into one SQL statement: the full-text match, the category and
date filters and the ranking all run in the database, in that statement, so a filter never
throws away hits after a LIMIT (the best match *inside* the filter is always returned).

`SearchPage.total` counts matches up to `settings.search_max_results` (1000 by default) and
stops there (`total_capped` is then True); pages beyond that cap are empty. Counting every
match of a common word across ~2.5M papers would cost more than it tells a reader.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from app.db.models import Paper, PaperCategory, PaperLink, Summary
from app.search.query import ParsedQuery

Sort = Literal["relevance", "date"]

papers = Paper.__table__
paper_categories = PaperCategory.__table__
summaries = Summary.__table__
paper_links = PaperLink.__table__

NO_TERMS_WARNING = "nothing to search for: enter a word, or a category or date filter"


@dataclass(frozen=True, slots=True)
class SearchHit:
    arxiv_id: str
    # Higher is better; comparable only within one page from one backend. None when the
    # page is a date-ordered listing with no search terms.
    score: float | None
    title: str
    sort_date: date
    primary_category: str
    authors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SearchPage:
    hits: tuple[SearchHit, ...]
    total: int  # matches, counted up to the backend's max_results
    limit: int
    offset: int
    total_capped: bool = False  # True when there may be more than `total` matches
    warnings: list[str] = field(default_factory=list, hash=False, compare=False)
    # The parsed query, e.g. for `query.highlight_terms()` when rendering the hits.
    query: ParsedQuery | None = field(default=None, compare=False)
    # What answered: "index" (app.search.fulltext) or "database" (this module's backends),
    # and how: "keyword", "semantic" or "hybrid" (app.hybrid).
    engine: str = field(default="database", compare=False)
    mode: str = field(default="keyword", compare=False)
    # Said on the page: why a search was answered differently than asked (no index yet, no
    # embeddings, ...).
    notices: list[str] = field(default_factory=list, hash=False, compare=False)

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.hits) < self.total

    def to_json(self) -> dict[str, object]:
        """The shape the API and `papershelf search --json` return."""
        return {
            "total": self.total,
            "total_capped": self.total_capped,
            "mode": self.mode,
            "engine": self.engine,
            "warnings": list(self.warnings),
            "notices": list(self.notices),
            "hits": [
                {
                    "arxiv_id": h.arxiv_id,
                    "title": h.title,
                    "authors": list(h.authors),
                    "primary_category": h.primary_category,
                    "date": h.sort_date.isoformat() if h.sort_date else None,
                    "score": h.score,
                }
                for h in self.hits
            ],
        }


@dataclass(frozen=True, slots=True)
class TextMatch:
    """A backend's compiled positive terms: what to join, the WHERE clause, the score."""

    from_: FromClause
    where: ColumnElement[bool]
    score: ColumnElement[float]  # higher is better
    # The matched paper's pk, in the index's own order (cheap to walk newest first).
    key: ColumnElement[int]
    # The match without the papers join, when the backend can rank without it.
    bare_from: FromClause | None = None


def _max_results() -> int:
    from app.settings import get_settings

    return get_settings().search_max_results


def _rank_window() -> int:
    from app.settings import get_settings

    return get_settings().search_rank_window


class SearchIndex(ABC):
    """One database's full-text index over `papers`: the one place that knows how the index
    is filled and rebuilt. The migrations create it (and its triggers, where it has some)."""

    dialect: str

    @abstractmethod
    def add(self, conn: Connection, arxiv_ids: Sequence[str]) -> None:
        """Index papers just inserted (the store calls this in the same transaction)."""

    @abstractmethod
    def rebuild(self, conn: Connection) -> None:
        """Rebuild the index from the papers table."""


class SearchBackend(ABC):
    """One database's full-text search. Stateless: one instance can serve any connection."""

    dialect: str
    index: SearchIndex

    def __init__(self, *, max_results: int | None = None, rank_window: int | None = None) -> None:
        self.max_results = max_results if max_results is not None else _max_results()
        self.rank_window = rank_window if rank_window is not None else _rank_window()

    # --- what each backend provides -----------------------------------------------------

    @abstractmethod
    def text_match(self, query: ParsedQuery) -> TextMatch:
        """The match for the query's positive terms (it has some), excluding its negatives."""

    @abstractmethod
    def excluded(self, query: ParsedQuery) -> ColumnElement[bool]:
        """True for papers matching any negative term (the query has some)."""

    # --- shared -------------------------------------------------------------------------

    def rebuild(self, conn: Connection) -> None:
        """Rebuild the search index from the papers table."""
        self.index.rebuild(conn)

    def search(
        self,
        conn: Connection,
        query: ParsedQuery,
        *,
        categories: Sequence[str] = (),
        date_from: date | None = None,
        date_to: date | None = None,
        sort: Sort = "relevance",
        limit: int = 20,
        offset: int = 0,
    ) -> SearchPage:
        """One page of papers matching `query`, restricted to `categories` (any of them,
        exact ids) and the inclusive date range, on top of the query's own filters.

        Without positive terms but with a filter, lists the filtered papers newest first,
        minus the excluded terms. With neither, returns an empty page with a warning."""
        warnings = list(query.warnings)
        limit = max(0, min(limit, self.max_results))
        offset = max(0, offset)
        filters = self._filters(query, categories, date_from, date_to)
        by_date = [papers.c.sort_date.desc(), papers.c.arxiv_id.desc()]
        columns = [
            papers.c.arxiv_id,
            papers.c.title,
            papers.c.sort_date,
            papers.c.primary_category,
            papers.c.authors,
        ]

        page_size = min(limit, self.max_results - offset)
        if query.has_positive_terms:
            match = self.text_match(query)
            source = match.bare_from if match.bare_from is not None and not filters else match.from_
            # Counting needs no ranking and no papers row unless a filter does.
            counted = sa.select(match.key).select_from(source).where(match.where, *filters)
            if sort == "relevance":
                page = self._ranked_page(match, source, filters, columns, page_size, offset)
            else:
                page = (
                    sa.select(*columns, sa.null().label("score"))
                    .select_from(match.from_)
                    .where(match.where, *filters)
                    .order_by(*by_date)
                )
        elif filters:
            if query.negative:
                filters.append(sa.not_(self.excluded(query)))
            counted = sa.select(papers.c.pk).where(*filters)
            page = sa.select(*columns, sa.null().label("score")).where(*filters).order_by(*by_date)
        else:
            if NO_TERMS_WARNING not in warnings:
                warnings.append(NO_TERMS_WARNING)
            return SearchPage((), 0, limit, offset, warnings=warnings, query=query)

        hits: tuple[SearchHit, ...] = ()
        if page_size > 0:
            rows = conn.execute(page.limit(page_size).offset(offset))
            hits = tuple(
                SearchHit(
                    arxiv_id=r.arxiv_id,
                    score=None if r.score is None else float(r.score),
                    title=r.title,
                    sort_date=r.sort_date,
                    primary_category=r.primary_category,
                    authors=tuple(r.authors or ()),
                )
                for r in rows
            )
        if hits and len(hits) < page_size:
            # A short page is the last one, so the count is known without counting.
            total = offset + len(hits)
        else:
            capped = counted.limit(self.max_results).subquery()
            total = conn.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one()
        return SearchPage(
            hits,
            total,
            limit,
            offset,
            total_capped=total >= self.max_results,
            warnings=warnings,
            query=query,
        )

    def _ranked_page(
        self,
        match: TextMatch,
        source: FromClause,
        filters: list[ColumnElement[bool]],
        columns: Sequence[ColumnElement[Any]],
        page_size: int,
        offset: int,
    ) -> sa.Select[Any]:
        """Best-first page. Only the newest `rank_window` matches (after the filters) are
        scored: a common word matches a third of 2.5M papers and scoring them all costs
        seconds; below the window (nearly every real query) the ranking is exact. Papers
        rows are read for the page alone."""
        window = (
            sa.select(match.key.label("pk"), match.score.label("score"))
            .select_from(source)
            .where(match.where, *filters)
            .order_by(match.key.desc())
            .limit(self.rank_window)
            .subquery("ranked")
        )
        best = (
            sa.select(window.c.pk, window.c.score)
            .order_by(window.c.score.desc(), window.c.pk.desc())
            .limit(max(page_size, 0) + offset)
            .subquery("best")
        )
        # The outer LIMIT/OFFSET (applied by the caller) pages through `best`.
        return (
            sa.select(*columns, best.c.score.label("score"))
            .select_from(best.join(papers, papers.c.pk == best.c.pk))
            .order_by(best.c.score.desc(), best.c.pk.desc())
        )

    @staticmethod
    def _filters(
        query: ParsedQuery,
        categories: Sequence[str],
        date_from: date | None,
        date_to: date | None,
    ) -> list[ColumnElement[bool]]:
        def listed_in(cats: Sequence[str]) -> ColumnElement[bool]:
            # EXISTS on the (category, arxiv_id) primary key: an index probe per candidate.
            return sa.exists().where(
                paper_categories.c.arxiv_id == papers.c.arxiv_id,
                paper_categories.c.category.in_(list(cats)),
            )

        filters: list[ColumnElement[bool]] = []
        # The caller's categories and the query's cat: terms must both hold; each is an
        # any-of set.
        if categories:
            filters.append(listed_in(categories))
        if query.categories:
            filters.append(listed_in(query.categories))
        if query.exclude_categories:
            filters.append(sa.not_(listed_in(query.exclude_categories)))
        lo = max((d for d in (date_from, query.date_from) if d is not None), default=None)
        hi = min((d for d in (date_to, query.date_to) if d is not None), default=None)
        if lo is not None:
            filters.append(papers.c.sort_date >= lo)
        if hi is not None:
            filters.append(papers.c.sort_date <= hi)
        if query.has_tldr is not None:
            with_tldr = sa.exists().where(summaries.c.arxiv_id == papers.c.arxiv_id)
            filters.append(with_tldr if query.has_tldr else sa.not_(with_tldr))
        if query.has_code is not None:
            with_code = sa.exists().where(
                paper_links.c.arxiv_id == papers.c.arxiv_id, paper_links.c.has_code
            )
            filters.append(with_code if query.has_code else sa.not_(with_code))
        return filters
