"""Category expressions and day listings, on a fresh store per test (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from app.db import store
from app.db.models import PaperClicks
from app.ingest.records import AnnounceKind, Announcement, PaperRecord
from app.listing import (
    InvalidExpression,
    InvalidFilter,
    day_listing,
    days_with_counts,
    keyword_hits,
    latest_day,
    listing_version,
    next_day,
    paper_cards,
    paper_page_version,
    parse_code_only,
    parse_expression,
    parse_hide_replacements,
    parse_keywords,
    previous_day,
)

D1, D2, D3 = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 5)
NEW, CROSS, REPLACE = AnnounceKind.NEW, AnnounceKind.CROSS, AnnounceKind.REPLACE


def paper(
    n: int, cats: list[str], anns: list[tuple[str, date, AnnounceKind, int]], title: str = ""
) -> PaperRecord:
    return PaperRecord(
        arxiv_id=f"2603.{n:05d}",
        title=title or f"Paper {n}",
        abstract=f"Abstract of paper {n}.",
        authors=["Ada Lovelace"],
        primary_category=cats[0],
        categories=cats,
        announcements=[Announcement(c, d, k, p) for c, d, k, p in anns],
    )


SEED = [
    # In cs.AI's list as new and cs.LG's as cross: shown once, as new.
    paper(1, ["cs.AI", "cs.LG"], [("cs.AI", D2, NEW, 0), ("cs.LG", D2, CROSS, 5)]),
    paper(2, ["cs.LG", "cs.AI"], [("cs.LG", D2, NEW, 1), ("cs.AI", D2, CROSS, 3)]),
    # Also in cs.CY, so `-cs.CY` drops it although it is in cs.AI's list.
    paper(3, ["cs.CY", "cs.AI"], [("cs.CY", D2, NEW, 2), ("cs.AI", D2, CROSS, 2)]),
    paper(4, ["cs.AI"], [("cs.AI", D2, REPLACE, 4)], title="Diffusion agents for planning"),
    paper(5, ["cs.CL"], [("cs.CL", D2, NEW, 6)]),
    paper(6, ["cs.AI"], [("cs.AI", D1, NEW, 0)]),
    paper(7, ["math.NA", "cs.LG"], [("math.NA", D3, NEW, 0), ("cs.LG", D3, CROSS, 1)]),
]


@pytest.fixture
def db(engine: Engine) -> Engine:
    with engine.begin() as conn:
        store.upsert_papers(conn, SEED)
    return engine


# --- expressions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "include", "exclude", "canonical"),
    [
        ("cs.AI", {"cs.AI"}, set(), "cs.AI"),
        ("cs.AI,cs.CL", {"cs.AI", "cs.CL"}, set(), "cs.AI+cs.CL"),
        ("cs.AI+cs.LG-cs.CY", {"cs.AI", "cs.LG"}, {"cs.CY"}, "cs.AI+cs.LG-cs.CY"),
        ("CS.ai", {"cs.AI"}, set(), "cs.AI"),
        ("cs.NA", {"math.NA"}, set(), "math.NA"),  # alias merged
        ("hep-th-hep-ph", {"hep-th"}, {"hep-ph"}, "hep-th-hep-ph"),
        ("cond-mat.str-el", {"cond-mat.str-el"}, set(), "cond-mat.str-el"),
        ("cs.AI,cs.AI", {"cs.AI"}, set(), "cs.AI"),
    ],
)
def test_parse_expression(text: str, include: set[str], exclude: set[str], canonical: str) -> None:
    expr = parse_expression(text)
    assert expr.include == include
    assert expr.exclude == exclude
    assert expr.canonical() == canonical
    assert parse_expression(expr.canonical()) == expr


def test_archive_expands() -> None:
    expr = parse_expression("cs-cs.CY")
    assert "cs.AI" in expr.include and "cs.LG" in expr.include
    assert "cs.CY" not in expr.include
    assert expr.exclude == {"cs.CY"}
    assert expr.canonical() == "cs-cs.CY"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("  ,+ ", "empty"),
        ("cs.XX", "unknown category 'cs.XX'"),
        ("cs.AI+bogus", "unknown category 'bogus'"),
        ("-cs.CY", "selects no category"),
        ("cs.AI-cs.AI", "selects no category"),
        ("cs.AI--cs.LG", "empty category"),
        ("<script>", "unknown category"),
        ("x" * 600, "longer than"),
    ],
)
def test_invalid_expressions(text: str, message: str) -> None:
    with pytest.raises(InvalidExpression, match=message):
        parse_expression(text)
    assert issubclass(InvalidExpression, ValueError)


# --- days -------------------------------------------------------------------------------


def test_days_and_navigation(db: Engine) -> None:
    expr = parse_expression("cs.AI+cs.LG-cs.CY")
    with db.connect() as conn:
        assert latest_day(conn, expr) == D3
        assert days_with_counts(conn, expr) == [(D1, 1), (D2, 3), (D3, 1)]
        assert days_with_counts(conn, expr, since=D2) == [(D2, 3), (D3, 1)]
        assert previous_day(conn, expr, D2) == D1
        assert next_day(conn, expr, D2) == D3
        assert previous_day(conn, expr, D1) is None
        assert next_day(conn, expr, D3) is None
        # cs.CL has papers only on D2.
        cl = parse_expression("cs.CL")
        assert latest_day(conn, cl) == D2
        assert previous_day(conn, cl, D2) is None
        assert latest_day(conn, parse_expression("astro-ph.CO")) is None


def test_union_exclusion_and_sections(db: Engine) -> None:
    with db.connect() as conn:
        union = day_listing(conn, parse_expression("cs.AI+cs.LG"), D2)
        minus = day_listing(conn, parse_expression("cs.AI+cs.LG-cs.CY"), D2)
    ids = [p.arxiv_id for p in union.papers]
    assert len(ids) == len(set(ids)) == 4  # each paper once
    assert [s.key for s in union.sections] == ["new", "cross", "replace"]
    assert [p.arxiv_id for p in union.sections[0].papers] == ["2603.00001", "2603.00002"]
    assert [p.arxiv_id for p in union.sections[1].papers] == ["2603.00003"]
    assert [p.arxiv_id for p in union.sections[2].papers] == ["2603.00004"]
    assert union.summary == "4 papers, 2 new, 1 cross-lists, 1 replacements"
    assert {p.arxiv_id for p in minus.papers} == {"2603.00001", "2603.00002", "2603.00004"}
    assert minus.summary == "3 papers, 2 new, 1 replacements"
    first = union.sections[0].papers[0]
    assert first.kind == "new" and first.position == 0
    assert first.title == "Paper 1" and first.categories == ["cs.AI", "cs.LG"]
    assert first.to_json()["abs_url"] == "https://arxiv.org/abs/2603.00001"


def test_alias_list(db: Engine) -> None:
    with db.connect() as conn:
        listing = day_listing(conn, parse_expression("cs.NA"), D3)
    assert [p.arxiv_id for p in listing.papers] == ["2603.00007"]


def test_sort_by_popularity_and_keywords(db: Engine) -> None:
    with db.begin() as conn:
        conn.execute(
            sa.insert(PaperClicks.__table__),
            [
                {"arxiv_id": "2603.00002", "pdf": 5, "summary": 2},
                {"arxiv_id": "2603.00001", "pdf": 1, "summary": 0},
            ],
        )
    expr = parse_expression("cs.AI+cs.LG")
    with db.connect() as conn:
        order = day_listing(conn, expr, D2)
        popular = day_listing(conn, expr, D2, sort="popularity")
        keyed = day_listing(conn, expr, D2, sort="keywords", keywords=["Paper 2", "abstract"])
    assert [p.arxiv_id for p in order.sections[0].papers] == ["2603.00001", "2603.00002"]
    assert [p.arxiv_id for p in popular.sections[0].papers] == ["2603.00002", "2603.00001"]
    assert popular.sections[0].papers[0].clicks == 7
    assert [p.arxiv_id for p in keyed.sections[0].papers] == ["2603.00002", "2603.00001"]
    assert keyed.sections[0].papers[0].keyword_hits == ["paper 2", "abstract"]
    assert keyed.keywords == ["paper 2", "abstract"]


def test_keywords_helpers() -> None:
    assert parse_keywords(" Diffusion, ,agents,diffusion ") == ["diffusion", "agents"]
    card = paper(9, ["cs.AI"], [], title="Transformers for $x$")
    from app.listing import PaperCard

    c = PaperCard(
        arxiv_id=card.arxiv_id,
        title=card.title,
        authors=card.authors,
        abstract=card.abstract,
        primary_category="cs.AI",
        categories=["cs.AI"],
    )
    # Keywords match at the start of a word: "transformer" finds "Transformers".
    assert keyword_hits(c, ["transformer", "former", "abstract"]) == ["transformer", "abstract"]


def test_paper_cards_for_many_ids(db: Engine) -> None:
    ids = [f"2603.{n:05d}" for n in range(1, 8)] + ["2603.09999"]
    with db.connect() as conn:
        cards = paper_cards(conn, ids)
    assert sorted(cards) == ids[:7]
    assert cards["2603.00004"].title == "Diffusion agents for planning"


def test_paper_page_version_follows_what_the_page_shows(db: Engine) -> None:
    from app.artifacts import summaries

    ids = ["2603.00001", "2603.00005"]
    with db.connect() as conn:
        first = paper_page_version(conn, ids)
        assert first is not None and first == paper_page_version(conn, [*ids, ids[0]])
        assert paper_page_version(conn, [*ids, "2603.09999"]) is None  # not all stored
        assert paper_page_version(conn, []) is None
    with db.begin() as conn:
        summaries.upsert(conn, [summaries.Written("2603.00005", None, "m", "A TL;DR.")])
    with db.connect() as conn:
        with_tldr = paper_page_version(conn, ids)
    assert with_tldr not in (None, first)
    moved = paper(5, ["cs.CL", "cs.AI"], [("cs.CL", D2, NEW, 6), ("cs.AI", D3, CROSS, 1)])
    with db.begin() as conn:
        store.upsert_papers(conn, [moved])
    with db.connect() as conn:
        assert paper_page_version(conn, ids) not in (None, first, with_tldr)


def test_listing_version_follows_what_the_page_shows(db: Engine) -> None:
    from app.artifacts import summaries
    from app.ingest.records import VenuePaperRecord

    expr = parse_expression("cs.AI+cs.LG-cs.CY")
    with db.connect() as conn:
        first = listing_version(conn, expr, D2)
        assert listing_version(conn, expr, D2) == first
        assert listing_version(conn, expr, D1) != first
    seen = {first}
    changes = [
        lambda conn: summaries.upsert(conn, [summaries.Written("2603.00002", None, "m", "T.")]),
        # A venue paper with a TL;DR, linked to paper 1 by its title.
        lambda conn: (
            store.upsert_venue(
                conn,
                "iclr2026",
                [VenuePaperRecord("iclr2026", "v1", "Paper 1", ["A. B."], tldr="Venue TL;DR.")],
            ),
            store.link_venues(conn),
        ),
        # A new day in one of the lists moves the prev/next links.
        lambda conn: store.upsert_papers(
            conn, [paper(8, ["cs.AI"], [("cs.AI", date(2026, 3, 6), NEW, 0)])]
        ),
    ]
    for change in changes:
        with db.begin() as conn:
            change(conn)
        with db.connect() as conn:
            version = listing_version(conn, expr, D2)
        assert version not in seen
        seen.add(version)


@pytest.mark.parametrize(
    ("raw", "code_only"),
    [("", False), ("0", False), ("false", False), (" TRUE ", True), ("1", True)],
)
def test_has_code_values_every_edge_shares(raw: str, code_only: bool) -> None:
    assert parse_code_only(raw) is code_only


@pytest.mark.parametrize(("raw", "hide"), [("", False), ("show", False), ("hide", True)])
def test_replacements_values_every_edge_shares(raw: str, hide: bool) -> None:
    assert parse_hide_replacements(raw) is hide


@pytest.mark.parametrize("raw", ["yes", "2", "<b>" * 30])
def test_a_meaningless_filter_value_says_which_and_what_is_allowed(raw: str) -> None:
    with pytest.raises(InvalidFilter, match="has_code must be 1 or 0"):
        parse_code_only(raw)
    with pytest.raises(InvalidFilter, match="replacements must be show or hide") as caught:
        parse_hide_replacements(raw)
    assert len(str(caught.value)) < 120  # the value is cut short, not echoed whole
