from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from app.ingest import rss
from app.ingest.records import AnnounceKind, DocumentError, ParsedPage
from app.ingest.rss import parse_feed

RSS = Path(__file__).resolve().parents[2] / "fixtures" / "rss"
NEW, CROSS = AnnounceKind.NEW, AnnounceKind.CROSS
REPLACE, REPLACE_CROSS = AnnounceKind.REPLACE, AnnounceKind.REPLACE_CROSS


def parse(name: str) -> ParsedPage:
    return parse_feed((RSS / name).read_bytes(), name)


def kinds(page: ParsedPage) -> dict[str, list[tuple[str, AnnounceKind, int | None]]]:
    return {
        p.arxiv_id: [(a.category, a.kind, a.position) for a in p.announcements] for p in page.papers
    }


def test_single_category_rss_all_announce_types() -> None:
    page = parse("cs.AI_2024-02-23.rss.xml")
    assert page.day == date(2024, 2, 23)
    assert page.feed_categories == ["cs.AI"]
    assert page.total == 5 and page.errors == []
    assert kinds(page) == {
        "2402.14001": [("cs.AI", NEW, 0)],
        "2402.13002": [("cs.AI", CROSS, 1)],
        "2310.01234": [("cs.AI", REPLACE, 2)],
        "2211.05678": [("cs.AI", REPLACE_CROSS, 3)],
        "cs/0112017": [("cs.AI", REPLACE, 4)],
    }
    assert all(a.day == date(2024, 2, 23) for p in page.papers for a in p.announcements)


def test_item_fields() -> None:
    papers = {p.arxiv_id: p for p in parse("cs.AI_2024-02-23.rss.xml").papers}
    new = papers["2402.14001"]
    assert new.version == 1
    assert new.title == "Planning with Language Models under Partial Observability"
    assert new.authors == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
    assert new.categories == ["cs.AI", "cs.LG"] and new.primary_category == "cs.AI"
    assert new.license == "http://creativecommons.org/licenses/by/4.0/"
    # The "arXiv:… Announce Type: …" preamble is not part of the abstract.
    assert new.abstract.startswith("We study planning when an agent")
    assert "$\\mathcal{O}(n)$" in new.abstract and "\n" not in new.abstract
    assert new.source == "rss" and new.line
    replaced = papers["2310.01234"]
    assert replaced.version == 3
    assert replaced.doi == "10.5802/jep.257"
    assert replaced.journal_ref == (
        "Journal de l'École polytechnique - Mathématiques, Tome 11 (2024), pp. 431-472"
    )
    cross = papers["2211.05678"]
    assert cross.primary_category == "stat.ML"  # listed first
    assert cross.title == "Calibrated Uncertainty for Schrödinger Bridge Samplers"
    assert cross.authors == ["José García", "Bjørn Nilsen"]


def test_multi_category_feed() -> None:
    page = parse("cs.AI+cs.LG_2024-02-26.rss.xml")
    assert page.day == date(2024, 2, 26)
    assert page.feed_categories == ["cs.AI", "cs.LG"]
    assert kinds(page) == {
        # primary cs.LG: new there, a cross-list in cs.AI
        "2402.15001": [("cs.LG", NEW, 0), ("cs.AI", CROSS, 0)],
        "2402.15002": [("cs.LG", CROSS, 1)],
        "2402.15003": [("cs.AI", NEW, 2)],
        "2401.00001": [("cs.LG", REPLACE, 3), ("cs.AI", REPLACE_CROSS, 3)],
        "2312.09999": [("cs.LG", REPLACE_CROSS, 4), ("cs.AI", REPLACE_CROSS, 4)],
    }
    assert parse("cs.AI+cs.LG_2024-02-26.rss.xml").papers[2].authors == [
        "Pierre Dupont",
        "Chen Jing",
        "Ravi Kumar",
    ]


def test_atom_feed() -> None:
    page = parse("math.OC_2024-08-23.atom.xml")
    assert page.day == date(2024, 8, 23)
    assert page.feed_categories == ["math.OC"]
    assert kinds(page) == {
        "2203.01250": [("math.OC", REPLACE_CROSS, 0)],
        "2408.12001": [("math.OC", NEW, 1)],
        "2408.12002": [("math.OC", CROSS, 2)],
    }
    papers = {p.arxiv_id: p for p in page.papers}
    spec = papers["2203.01250"]
    assert spec.version == 3 and spec.primary_category == "math.AP"
    assert spec.authors == ["Antonin Monteil", "Paul Pegon"]
    assert spec.abstract.startswith("We consider first order local minimization problems")
    assert "$\\min \\int_{\\mathbb{R}^N}f(u,\\nabla u)$" in spec.abstract
    assert papers["2408.12001"].categories == ["math.OC", "math.NA"]  # cs.NA canonicalised
    assert papers["2408.12001"].authors == ["Ingrid Larsen", "Tomáš Novak"]
    assert papers["2408.12002"].categories == ["eess.SY", "math.OC"]  # cs.SY folded in


@pytest.mark.parametrize(
    ("name", "day", "feed"),
    [
        ("cs.AI_2024-02-24_empty.rss.xml", date(2024, 2, 24), ["cs.AI"]),
        ("math.OC_2024-08-24_empty.atom.xml", date(2024, 8, 24), ["math.OC"]),
    ],
)
def test_empty_weekend_feed(name: str, day: date, feed: list[str]) -> None:
    page = parse(name)
    assert page.papers == [] and page.errors == []
    assert page.day == day and page.feed_categories == feed and page.total == 0


def test_day_is_the_us_eastern_calendar_day() -> None:
    # 03:30 UTC on the 24th is still the 23rd in New York.
    data = (RSS / "cs.AI_2024-02-24_empty.rss.xml").read_bytes()
    data = data.replace(b"<pubDate>Sat, 24 Feb 2024 00:00:00 -0500</pubDate>", b"").replace(
        b"Sat, 24 Feb 2024 05:00:04 +0000", b"Sat, 24 Feb 2024 03:30:00 +0000"
    )
    assert parse_feed(data, "x").day == date(2024, 2, 23)


def test_archive_feed_expands_to_its_categories() -> None:
    data = (RSS / "cs.AI_2024-02-23.rss.xml").read_bytes().replace(b"rss/cs.AI", b"rss/cs")
    page = parse_feed(data, "cs.xml")
    assert "cs.AI" in page.feed_categories and "cs.LG" in page.feed_categories
    by_id = kinds(page)
    assert by_id["2402.14001"] == [("cs.AI", NEW, 0), ("cs.LG", CROSS, 0)]
    assert by_id["2402.13002"] == [("cs.CL", NEW, 1), ("cs.AI", CROSS, 1)]


def test_bad_items_are_reported_and_the_rest_kept() -> None:
    data = (RSS / "cs.AI_2024-02-23.rss.xml").read_text(encoding="utf-8")
    data = data.replace(
        "<title>Retrieval-Augmented Dialogue for Low-Resource Languages</title>", "<title/>"
    )
    data = data.replace("<category>stat.ML</category>", "<category>stat.XX</category>")
    page = parse_feed(data.encode(), "feed.xml")
    assert [p.arxiv_id for p in page.papers] == ["2402.14001", "2310.01234", "cs/0112017"]
    assert [(e.record, e.source) for e in page.errors] == [
        ("2402.13002", "feed.xml"),
        ("2211.05678", "feed.xml"),
    ]
    assert "title" in page.errors[0].message and "stat.XX" in page.errors[1].message
    assert page.errors[0].line == 33  # where that <item> starts
    # Positions still follow the feed's item order.
    assert page.papers[1].announcements[0].position == 2


def test_truncated_feed_raises() -> None:
    data = (RSS / "cs.AI_2024-02-23.rss.xml").read_bytes()
    with pytest.raises(DocumentError, match="not well-formed"):
        parse_feed(data[:3000], "feed.xml")


def test_wrong_encoding_raises() -> None:
    data = (RSS / "cs.AI_2024-02-23.rss.xml").read_text(encoding="utf-8")
    data = data.replace("Ada Lovelace", "Adà Lovelace")  # declared UTF-8, written as Latin-1
    with pytest.raises(DocumentError, match="encoding") as info:
        parse_feed(data.encode("latin-1"), "feed.xml")
    assert info.value.line == 31


def test_other_xml_raises() -> None:
    with pytest.raises(DocumentError, match="neither RSS"):
        parse_feed(b"<html/>", "feed.xml")


def test_eastern_day_without_a_tz_database(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(key: str) -> ZoneInfo:
        raise ZoneInfoNotFoundError(key)

    eastern = ZoneInfo("America/New_York")
    moments = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(0, 366 * 24, 7)]
    expected = [m.astimezone(eastern).date() for m in moments]
    monkeypatch.setattr(rss, "ZoneInfo", missing)
    assert [rss._eastern_day(m) for m in moments] == expected
