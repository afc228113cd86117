"""The record types enforce the store's text rule for every source: no character XML forbids
(NUL among them) survives into a record, and the text around it is kept."""

from __future__ import annotations

import json

from app.ingest.jsonl import iter_kaggle, iter_listing
from app.ingest.records import PaperRecord, RecordError, VenuePaperRecord, Version
from app.ingest.venues import parse_venue

DIRTY = "Deep\x00 nets\x02 for\x1f graphs\ufffe\uffff\ud800"
CLEAN = "Deep nets for graphs"
# orjson refuses lone surrogates (the line is reported instead), so JSON Lines test the rest.
DIRTY_JSONL = DIRTY.replace("\ud800", "")
FORBIDDEN = {chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20))} | {
    "\ufffe",
    "\uffff",
    "\ud800",
}


def forbidden_in(value: object) -> set[str]:
    """Every forbidden character anywhere in a record's string fields."""
    found: set[str] = set()
    if isinstance(value, str):
        found |= FORBIDDEN & set(value)
    elif isinstance(value, list | tuple):
        for item in value:
            found |= forbidden_in(item)
    elif hasattr(value, "__slots__"):
        for name in value.__slots__:
            found |= forbidden_in(getattr(value, name))
    return found


def test_records_built_directly_are_cleaned() -> None:
    rec = PaperRecord(
        arxiv_id="2501.00001",
        title=DIRTY,
        abstract=f"An abstract. {DIRTY}",
        authors=["Ann\x00 Lee", "\x01"],
        primary_category="cs.LG",
        categories=["cs.LG"],
        versions=[Version(1, size="1\x00kb")],
        comments="\x02",
        journal_ref="J.\x0b Ref",
        doi="10.1/x\x00y",
        license=None,
        classes=["I.2\x7f", "\x03"],
    )
    assert rec.title == "Deep nets for graphs"
    assert rec.abstract == "An abstract. Deep nets for graphs"
    assert rec.authors == ["Ann Lee"]  # a name made only of forbidden characters is dropped
    assert rec.versions[0].size == "1kb"
    assert rec.comments is None and rec.journal_ref == "J. Ref" and rec.doi == "10.1/xy"
    assert rec.classes == ["I.2\x7f"]  # DEL is legal XML: kept
    assert forbidden_in(rec) == set()

    venue = VenuePaperRecord(
        venue="demo",
        venue_paper_id="a\x001",
        title=DIRTY,
        authors=["B\x02o"],
        abstract="\x00",
        tldr="Short\x1f.",
        keywords=["x\x00", "\x01"],
    )
    assert (venue.venue_paper_id, venue.title, venue.authors) == ("a1", CLEAN, ["Bo"])
    assert venue.abstract is None and venue.tldr == "Short." and venue.keywords == ["x"]

    error = RecordError("f.jsonl", 3, "bad\x00id", "broken\x02 line")
    assert str(error) == "f.jsonl:3: record badid broken line"


def test_json_lines_sources_keep_dirty_records_clean() -> None:
    listing = {
        "id": "2508.00001",
        "listing_date": "2025-08-05",
        "title": DIRTY_JSONL,
        "authors": ["Ann\x00 Lee", "Bo Chen\x02"],
        "categories": ["cs.CL"],
        "comment": "12 pages\x00",
        "abstract": f"Line one\n{DIRTY_JSONL}",
    }
    kaggle = {
        "id": "0704.0001",
        "authors": "Ann\x00 Lee and Bo Chen",
        "title": DIRTY_JSONL,
        "categories": "cs.CL",
        "abstract": f"  {DIRTY_JSONL}\n",
        "journal-ref": "Phys.\x00Rev.",
        "versions": [{"version": "v1", "created": "Mon, 2 Apr 2007 19:18:42 GMT"}],
    }
    (paper,) = iter_listing([json.dumps(listing).encode()], "l.jsonl")
    assert isinstance(paper, PaperRecord)
    assert paper.title == CLEAN and paper.abstract == f"Line one {CLEAN}"
    assert paper.authors == ["Ann Lee", "Bo Chen"] and paper.comments == "12 pages"
    (snap,) = iter_kaggle([json.dumps(kaggle).encode()], "k.jsonl")
    assert isinstance(snap, PaperRecord)
    assert snap.title == CLEAN and snap.abstract == CLEAN and snap.journal_ref == "Phys.Rev."
    assert snap.authors == ["Ann Lee", "Bo Chen"]
    assert forbidden_in(paper) == forbidden_in(snap) == set()


def test_venue_lists_keep_dirty_records_clean() -> None:
    rows = [
        {"id": "a\x001", "title": DIRTY, "author": "A\x02; B", "abstract": "x\x00y"},
        {"id": "\x00", "title": "No usable id"},
        {"id": "a2", "title": "\x00\x02"},
        {"id": "a3", "title": "Neighbour", "tldr": "t\x1fl;dr"},
    ]
    page = parse_venue(json.dumps(rows).encode(), "demo", "demo.json")
    assert [(p.venue_paper_id, p.title) for p in page.venue_papers] == [
        ("a1", CLEAN),
        ("a3", "Neighbour"),
    ]
    assert page.venue_papers[0].authors == ["A", "B"]
    assert page.venue_papers[0].abstract == "xy" and page.venue_papers[1].tldr == "tl;dr"
    assert [e.message for e in page.errors] == ["paper has no id", "paper has no title"]
    assert forbidden_in(page.venue_papers) == set()
