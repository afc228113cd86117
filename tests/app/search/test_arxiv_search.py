"""`/api/query`'s evaluation: the relevance rank window keeps every match reachable and the
total unchanged, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from app.db import store
from app.ingest.records import PaperRecord
from app.search.arxiv_query import parse_search_query
from app.search.arxiv_search import ArxivPage, run_query

FILLER = ["alpha", "beta", "gamma", "delta", "epsilon"]


def paper(i: int, graphs: int) -> PaperRecord:
    # The same length for all: only the count of "graph" tells them apart.
    words = ["graph"] * graphs + FILLER[: 5 - graphs]
    return PaperRecord(
        arxiv_id=f"2601.0000{i}",
        title=f"Paper {i}",
        abstract=" ".join(words),
        authors=["Ada Lovelace"],
        primary_category="cs.LG",
        categories=["cs.LG"],
        version=1,
        first_submitted_at=datetime(2026, 1, i, tzinfo=UTC),
    )


@pytest.fixture
def conn(engine: sa.Engine):  # type: ignore[no-untyped-def]
    # Stored oldest first, one by one: pk order is storage order. The oldest says
    # "graph" most, so it is the best match.
    for i in range(1, 6):
        with engine.begin() as c:
            store.upsert_papers(c, [paper(i, 6 - i)])
    with engine.connect() as c:
        yield c


def ids(page: ArxivPage) -> list[str]:
    return [e.arxiv_id[-1] for e in page.entries]


def pages(conn: sa.Connection, size: int, window: int, **kw: str) -> list[str]:
    node = parse_search_query("all:graph")
    out: list[str] = []
    for start in range(0, 5, size):
        page = run_query(conn, node, start=start, max_results=size, rank_window=window, **kw)  # type: ignore[arg-type]
        assert page.total == 5
        out += ids(page)
    return out


def test_without_a_window_limit_every_match_is_ranked(conn: sa.Connection) -> None:
    assert pages(conn, 5, 1000) == ["1", "2", "3", "4", "5"]
    assert pages(conn, 2, 1000) == ["1", "2", "3", "4", "5"]


def test_the_window_ranks_the_newest_then_lists_the_older_matches(conn: sa.Connection) -> None:
    # The two newest ranked (4 says "graph" twice, 5 once), then the rest newest first.
    assert pages(conn, 5, 2) == ["4", "5", "3", "2", "1"]
    # A page that straddles the window's edge, and pages past it, say the same.
    assert pages(conn, 3, 2) == ["4", "5", "3", "2", "1"]
    assert pages(conn, 1, 2) == ["4", "5", "3", "2", "1"]
    worst_first = pages(conn, 2, 2, sort_order="ascending")
    assert worst_first[:2] == ["5", "4"]
    assert sorted(worst_first) == ["1", "2", "3", "4", "5"]


def test_a_window_as_large_as_the_matches_changes_nothing(conn: sa.Connection) -> None:
    assert pages(conn, 2, 5) == ["1", "2", "3", "4", "5"]
    assert pages(conn, 5, 6) == ["1", "2", "3", "4", "5"]


def test_the_window_follows_the_setting(
    conn: sa.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.settings import get_settings

    monkeypatch.setenv("PAPERSHELF_SEARCH_RANK_WINDOW", "2")
    get_settings.cache_clear()
    try:
        page = run_query(conn, parse_search_query("all:graph"), max_results=5)
    finally:
        monkeypatch.delenv("PAPERSHELF_SEARCH_RANK_WINDOW")
        get_settings.cache_clear()
    assert ids(page) == ["4", "5", "3", "2", "1"]


def test_date_order_reads_the_page_rows(conn: sa.Connection) -> None:
    node = parse_search_query("all:graph ANDNOT all:gamma")
    page = run_query(conn, node, sort_by="submittedDate", sort_order="ascending", max_results=2)
    assert page.total == 3 and ids(page) == ["1", "2"]
    last = run_query(conn, node, sort_by="submittedDate", start=2, max_results=2)
    assert ids(last) == ["1"]
    assert last.entries[0].abstract == "graph graph graph graph graph"


def test_without_a_submission_time_the_listing_day_stands_in(conn: sa.Connection) -> None:
    """RSS and listing files say when a paper was announced, not when it was submitted:
    `submittedDate` ranges and order use that day, as the entry's `published` does."""
    from app.ingest.records import Announcement

    announced = PaperRecord(
        arxiv_id="2601.00009",
        title="Announced only",
        abstract="graph",
        authors=["Ada Lovelace"],
        primary_category="cs.LG",
        categories=["cs.LG"],
        version=1,
        announcements=[Announcement("cs.LG", datetime(2026, 1, 3).date(), "new")],
    )
    with conn.engine.begin() as c:
        store.upsert_papers(c, [announced])

    def found(query: str, **kw: str) -> list[str]:
        page = run_query(conn, parse_search_query(query), start=0, max_results=10, **kw)  # type: ignore[arg-type]
        return ids(page)

    # Its day, 2026-01-03, from midnight UTC: inside the range that covers it, not the next.
    assert sorted(found("submittedDate:[202601030000 TO 202601032359]")) == ["3", "9"]
    assert "9" not in found("submittedDate:[202601040000 TO 202601312359]")
    assert "9" in found("lastUpdatedDate:[202601030000 TO 202601032359]")
    by_date = found("all:graph", sort_by="submittedDate", sort_order="ascending")
    assert by_date == ["1", "2", "3", "9", "4", "5"]
    page = run_query(conn, parse_search_query("id:2601.00009"), start=0, max_results=1)
    assert page.entries[0].published == datetime(2026, 1, 3, tzinfo=UTC)
