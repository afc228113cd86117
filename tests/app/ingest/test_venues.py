from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from app.ingest.records import DocumentError
from app.ingest.venues import parse_venue

COUNTS = {
    "iclr2017": 490,
    "iclr2018": 714,
    "nips2018": 1009,
    "icml2019": 774,
    "acl2022": 1031,
    "naacl2024": 912,
}


@pytest.fixture
def lists(shared_data: Path) -> Path:
    return shared_data / "venues" / "paperlists"


@pytest.mark.parametrize("venue", sorted(COUNTS))
def test_real_lists_parse_completely(lists: Path, venue: str) -> None:
    name = f"{venue}.json.gz"
    page = parse_venue((lists / name).read_bytes(), venue, name)
    assert len(page.venue_papers) + len(page.errors) == COUNTS[venue] == page.total
    assert page.papers == []
    assert all(p.venue == venue and p.title and p.venue_paper_id for p in page.venue_papers)
    lines = [p.line for p in page.venue_papers]
    assert lines == sorted(lines) and lines[0] == 2  # the first object opens on line 2


def test_iclr_fields(lists: Path) -> None:
    page = parse_venue((lists / "iclr2017.json.gz").read_bytes(), "iclr2017", "iclr2017.json.gz")
    paper = next(p for p in page.venue_papers if p.venue_paper_id == "B1-Hhnslg")
    assert paper.title == "Prototypical Networks for Few-shot Learning"
    assert paper.authors == ["Jake Snell", "Kevin Swersky", "Richard Zemel"]
    assert paper.keywords == ["Deep learning", "Transfer Learning"]
    assert paper.status == "Reject" and paper.track == "main"
    assert paper.tldr and paper.tldr.startswith("We learn a metric space")
    assert paper.site == "https://openreview.net/forum?id=B1-Hhnslg"
    # One real ICLR 2017 entry has an empty title: reported where it is, the rest kept.
    (error,) = page.errors
    assert (error.record, error.line, error.source) == ("SJUdkecgx", 11780, "iclr2017.json.gz")
    assert "title" in error.message


def test_proceedings_fields(lists: Path) -> None:
    page = parse_venue((lists / "nips2018.json.gz").read_bytes(), "nips2018", "nips2018.json.gz")
    first = page.venue_papers[0]
    assert first.title == "$\\ell_1$-regression with Heavy-tailed Distributions"  # TeX kept
    assert first.authors == ["Lijun Zhang", "Zhi-Hua Zhou"]
    assert first.tldr is None and first.keywords == []
    acl = parse_venue((lists / "acl2022.json.gz").read_bytes(), "acl2022", "acl2022.json.gz")
    assert acl.venue_papers[0].status == "Short"


def test_bad_elements_are_reported_and_the_rest_kept() -> None:
    rows = [
        {"id": "a1", "title": "Good one", "author": "A; B;", "keywords": ["x", " y "]},
        {"id": "a2", "title": "  "},
        "not an object",
        {"title": "no id"},
        {"id": 17, "title": "Numeric id", "abstract": "Text\nwrapped", "tldr": ""},
    ]
    data = json.dumps(rows, indent=2).encode()
    page = parse_venue(data, "demo", "demo.json")
    assert [(p.venue_paper_id, p.line) for p in page.venue_papers] == [("a1", 2), ("17", 19)]
    assert page.venue_papers[0].authors == ["A", "B"]
    assert page.venue_papers[0].keywords == ["x", "y"]
    assert page.venue_papers[1].abstract == "Text wrapped" and page.venue_papers[1].tldr is None
    assert [(e.line, e.record) for e in page.errors] == [(11, "a2"), (15, None), (16, None)]


def test_gzip_bytes_are_accepted() -> None:
    data = gzip.compress(json.dumps([{"id": "x", "title": "T"}]).encode())
    assert parse_venue(data, "v", "v.json.gz").venue_papers[0].title == "T"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty"),
        (b'{"id": "x"}', "array"),
        (b'[\n  {"id": "x", "title": "T"},\n  {"id": "y", "ti', "not well-formed"),
        (b'[{"id": "x", "title": "Caf\xe9"}]', "UTF-8"),
        (b'[{"id": "x", "title": "T"}] trailing', "after the array"),
        (b'[{"id": "x", "title": "T"} {"id": "y"}]', "not well-formed"),
    ],
)
def test_document_errors(data: bytes, match: str) -> None:
    with pytest.raises(DocumentError, match=match) as info:
        parse_venue(data, "v", "v.json")
    assert str(info.value).startswith("v.json")


def test_truncation_names_the_line() -> None:
    with pytest.raises(DocumentError) as info:
        parse_venue(b'[\n  {"id": "x", "title": "T"},\n  {"id": "y", "ti', "v", "v.json")
    assert info.value.line == 3
