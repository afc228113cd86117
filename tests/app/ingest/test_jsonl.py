from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

from app.ingest.jsonl import iter_kaggle, iter_listing
from app.ingest.records import AnnounceKind, PaperRecord, RecordError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
LISTING = "arxiv/papers_cs_2025-08-05_2026-07-01.jsonl.gz"


def listing_line(**fields: object) -> bytes:
    row: dict[str, object] = {
        "id": "2508.00001",
        "listing_date": "2025-08-05",
        "title": "A title",
        "authors": ["Ann Lee", "Bo Chen"],
        "categories": ["cs.CL", "cs.AI"],
        "comment": None,
        "abstract": "An abstract\nwrapped.",
    }
    row.update(fields)
    return json.dumps({k: v for k, v in row.items() if v is not ...}).encode() + b"\n"


def split(items: list[PaperRecord | RecordError]) -> tuple[list[PaperRecord], list[RecordError]]:
    papers = [i for i in items if isinstance(i, PaperRecord)]
    errors = [i for i in items if isinstance(i, RecordError)]
    return papers, errors


def test_real_listing_file(shared_data: Path) -> None:
    with gzip.open(shared_data / LISTING, "rb") as fh:
        papers, errors = split(list(iter_listing(fh, "papers.jsonl.gz")))
    assert errors == []
    assert len(papers) == 49_866
    assert len({p.arxiv_id for p in papers}) == 49_866
    days = Counter(p.announcements[0].day for p in papers)
    assert len(days) == 221
    assert min(days) == date(2025, 8, 5) and max(days) == date(2026, 7, 1)
    primaries = Counter(p.primary_category for p in papers)
    assert (primaries["cs.CV"], primaries["cs.CL"], primaries["cs.AI"]) == (24_393, 14_262, 10_475)
    # Every paper is new in its primary and a cross-list elsewhere, in file order per day.
    for p in papers:
        assert p.announcements[0].category == p.primary_category
        assert p.announcements[0].kind is AnnounceKind.NEW
        assert all(a.kind is AnnounceKind.CROSS for a in p.announcements[1:])
        assert [a.category for a in p.announcements] == p.categories
        assert "\n" not in p.abstract and p.title == p.title.strip()
    positions = Counter((a.day, a.position) for p in papers for a in p.announcements[:1])
    assert all(n == 1 for n in positions.values())
    assert {pos for (day, pos) in positions if day == date(2025, 8, 5)} == set(
        range(days[date(2025, 8, 5)])
    )
    first = papers[0]
    assert (first.arxiv_id, first.version) == ("1907.00326", None)
    assert first.categories == ["cs.CL", "cs.AI", "cs.HC", "cs.LG"]
    assert first.comments == "Accepted to ACL 2019"
    # ACM/MSC codes mixed into the category lists end up as classes, never as categories.
    classes = Counter(c for p in papers for c in p.classes)
    assert classes["I.2.7"] > 100 and classes["68T50"] > 40
    assert not any("," in c or ";" in c for p in papers for c in p.categories)
    assert sum(1 for p in papers if "cs.MM" in p.categories and "cs.CV" in p.categories) > 0


def test_listing_fields_and_positions() -> None:
    lines = [
        listing_line(id="2508.00001"),
        listing_line(id="2508.00002", categories=["cs.CV", "I.2.10; I.4.8", "cs.CV, cs.MM"]),
        listing_line(id="2508.00003", listing_date="2025-08-06", comment="9 pages"),
        listing_line(id="2508.00004", title='Schr\\"odinger  Bridges\n for $\\hat{x}$'),
    ]
    papers, errors = split(list(iter_listing(lines, "day.jsonl")))
    assert errors == []
    a, b, c, d = papers
    assert a.abstract == "An abstract wrapped."
    assert a.authors == ["Ann Lee", "Bo Chen"] and a.source == "jsonl" and a.line == 1
    assert [(x.category, x.kind, x.position) for x in a.announcements] == [
        ("cs.CL", AnnounceKind.NEW, 0),
        ("cs.AI", AnnounceKind.CROSS, 0),
    ]
    assert b.categories == ["cs.CV", "cs.MM"] and b.classes == ["I.2.10", "I.4.8"]
    assert b.announcements[0].position == 1
    assert c.announcements[0].day == date(2025, 8, 6) and c.announcements[0].position == 0
    assert c.comments == "9 pages"
    assert d.title == "Schrödinger Bridges for $\\hat{x}$"
    assert d.announcements[0].position == 2


def test_bad_lines_are_reported_and_good_ones_kept() -> None:
    lines = [
        listing_line(id="2508.00001"),
        b'{"id": "2508.00002", "title": "broken", \n',
        listing_line(id="2508.00003", title=""),
        listing_line(id="2508.00004", title=...),
        b"\n",
        listing_line(id="nonsense"),
        listing_line(id="2508.00007", categories=["cs.XX", "cs.AI"]),
        listing_line(id="2508.00008", categories=["I.2.7"]),
        b'{"id": "2508.00009", "title": "Caf\xe9"}\n',
        b"[1, 2]\n",
        listing_line(id=...),
        listing_line(id="2508.00012", abstract="   "),
        listing_line(id="2508.00013", listing_date="yesterday"),
        listing_line(id="2508.00014"),
    ]
    papers, errors = split(list(iter_listing(lines, "day.jsonl")))
    assert [p.arxiv_id for p in papers] == ["2508.00001", "2508.00014"]
    assert [p.line for p in papers] == [1, 14]
    got = [(e.line, e.record) for e in errors]
    assert got == [
        (2, "2508.00002"),
        (3, "2508.00003"),
        (4, "2508.00004"),
        (6, "nonsense"),
        (7, "2508.00007"),
        (8, "2508.00008"),
        (9, "2508.00009"),
        (10, None),
        (11, None),
        (12, "2508.00012"),
        (13, "2508.00013"),
    ]
    by_line = {e.line: e.message for e in errors}
    assert "invalid JSON" in by_line[2]
    assert "title" in by_line[3] and "title" in by_line[4]
    assert "not an arXiv id" in by_line[6]
    assert "cs.XX" in by_line[7] and "primary" in by_line[8]
    assert "UTF-8" in by_line[9]
    assert "object" in by_line[10] and "'id'" in by_line[11] and "abstract" in by_line[12]
    assert all(e.source == "day.jsonl" for e in errors)
    assert str(errors[0]).startswith("day.jsonl:2: record 2508.00002")
    # Positions count only the papers that made it.
    assert papers[1].announcements[0].position == 1


def test_kaggle_sample() -> None:
    with (FIXTURES / "kaggle_sample.jsonl").open("rb") as fh:
        papers, errors = split(list(iter_kaggle(fh, "kaggle_sample.jsonl")))
    assert errors == []
    by_id = {p.arxiv_id: p for p in papers}
    first = by_id["0704.0001"]
    assert first.version == 2 and [v.number for v in first.versions] == [1, 2]
    assert first.first_submitted_at == datetime(2007, 4, 2, 19, 18, 42, tzinfo=UTC)
    assert first.last_updated_at == datetime(2007, 7, 24, 20, 10, 27, tzinfo=UTC)
    assert first.authors == ["C. Balázs", "E. L. Berger", "P. M. Nadolsky", "C. -P. Yuan"]
    assert first.title == (
        "Calculation of prompt diphoton production cross sections at Tevatron and LHC energies"
    )
    assert first.journal_ref == "Phys.Rev.D76:013009,2007"
    assert first.doi == "10.1103/PhysRevD.76.013009"
    assert first.license is None and first.announcements == [] and first.source == "kaggle"
    assert by_id["0704.0002"].categories == ["math.CO", "cs.CG"]
    old = by_id["math/0309136"]
    assert old.title.endswith("Poincaré duality")
    assert old.authors == ["Ivan Petrov", "Frédéric Dubois"]  # TeX in authors_parsed too
    recent = by_id["2401.00123"]
    assert recent.version == 3 and recent.authors[0] == "John Smith Jr"
    assert recent.title == "Schrödinger Bridges for Text Generation"
    assert "$\\mathcal{O}(n)$" in recent.abstract
    assert by_id["cmp-lg/9404001"].categories == ["cs.CL"]  # retired archive folded in
    assert by_id["1209.0001"].categories == ["math.NA"]  # cs.NA is an alias of math.NA


def test_kaggle_falls_back_to_author_string_and_reports_bad_rows() -> None:
    good = {
        "id": "0704.0003",
        "authors": "Hongjun Pan and Ann Lee",
        "title": "The evolution of the Earth-Moon system",
        "categories": "physics.gen-ph",
        "abstract": "  A new model.\n",
        "versions": [{"version": "v1", "created": "Sun, 1 Apr 2007 20:46:54 GMT"}],
    }
    lines = [
        json.dumps(good).encode(),
        json.dumps({**good, "id": "0704.0004", "categories": ""}).encode(),
        b"not json",
        json.dumps({**good, "id": "0704.0006", "versions": "junk"}).encode(),
    ]
    papers, errors = split(list(iter_kaggle(lines, "snap.json")))
    assert [p.arxiv_id for p in papers] == ["0704.0003", "0704.0006"]
    assert papers[0].authors == ["Hongjun Pan", "Ann Lee"]
    assert papers[1].versions == [] and papers[1].version is None
    assert [(e.line, e.record) for e in errors] == [(2, "0704.0004"), (3, None)]


def test_iterators_are_lazy() -> None:
    def endless():  # type: ignore[no-untyped-def]
        n = 0
        while True:
            n += 1
            yield listing_line(id=f"2508.{n:05d}")

    it = iter_listing(endless(), "stream")
    first = [next(it) for _ in range(3)]
    assert [p.arxiv_id for p in first] == ["2508.00001", "2508.00002", "2508.00003"]
