from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from app.ingest.formats import detect_format, read_file
from app.ingest.records import DocumentError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("arxiv/fixtures/arxiv_api/search_all-testing_start0_max10.xml", "arxiv-api"),
        ("arxiv/fixtures/arxiv_api/legacy2016_id_list_1111.2011v2.xml", "arxiv-api"),
        ("arxiv/fixtures/arxiv_api/empty_id_list_0000.0000.xml", "arxiv-api"),
        ("arxiv/fixtures/arxiv_api/error400_id_list_abc.xml", "arxiv-api"),
        ("arxiv/fixtures/oai_pmh/getrecord_arXiv_1401.2122.xml", "oai-pmh"),
        (
            "arxiv/fixtures/oai_pmh/listrecords_oai_dc_set-cs_2024-01-25_with_resumptionToken.xml",
            "oai-pmh",
        ),
        ("arxiv/papers_cs_2025-08-05_2026-07-01.jsonl.gz", "listing-jsonl"),
        ("venues/paperlists/iclr2018.json.gz", "venue-json"),
        ("venues/paperlists/nips2018.json.gz", "venue-json"),
    ],
)
def test_detects_real_files(shared_data: Path, path: str, fmt: str) -> None:
    assert detect_format(shared_data / path) == fmt


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("rss/cs.AI_2024-02-23.rss.xml", "rss"),
        ("rss/cs.AI_2024-02-24_empty.rss.xml", "rss"),
        ("rss/math.OC_2024-08-23.atom.xml", "atom-feed"),
        ("rss/math.OC_2024-08-24_empty.atom.xml", "atom-feed"),
        ("oai_pmh/listrecords_arXivRaw_set-cs_with_resumptionToken.xml", "oai-pmh"),
        ("oai_pmh/error_badResumptionToken.xml", "oai-pmh"),
        ("kaggle_sample.jsonl", "kaggle-jsonl"),
    ],
)
def test_detects_our_fixtures(path: str, fmt: str) -> None:
    assert detect_format(FIXTURES / path) == fmt


def test_content_not_name_decides_and_gzip_is_transparent(tmp_path: Path) -> None:
    feed = (FIXTURES / "rss" / "cs.AI_2024-02-23.rss.xml").read_bytes()
    odd = tmp_path / "download.bin"
    odd.write_bytes(gzip.compress(feed))
    assert detect_format(odd) == "rss"
    (page,) = read_file(odd)
    assert len(page.papers) == 5


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty file"),
        (b"  \n\n", "empty file"),
        (b"hello world", "unknown format"),
        (b"<html><body/></html>", "unknown XML"),
        (b"<feed xmlns='http://www.w3.org/2005/Atom'></feed>", "Atom feed that is neither"),
        (b'{"foo": 1}\n', "neither arXiv listing nor Kaggle"),
        (b"{not json\n{still not\n", "no line is valid JSON"),
    ],
)
def test_unknown_or_empty_files(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "input.dat"
    path.write_bytes(content)
    with pytest.raises(DocumentError, match=match) as info:
        detect_format(path)
    assert "input.dat" in str(info.value)


def listing_rows(n: int) -> list[bytes]:
    return [
        json.dumps(
            {
                "id": f"2508.{i:05d}",
                "listing_date": "2025-08-05",
                "title": f"Paper {i}",
                "authors": ["A"],
                "categories": ["cs.AI"],
                "comment": None,
                "abstract": "Text.",
            }
        ).encode()
        for i in range(1, n + 1)
    ]


def test_jsonl_streams_in_bounded_pages(tmp_path: Path) -> None:
    rows = listing_rows(25)
    rows[11] = b'{"id": "2508.00012", broken'
    path = tmp_path / "papers.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(rows) + b"\n"))
    pages = list(read_file(path, batch_size=10))
    assert [len(p.papers) + len(p.errors) for p in pages] == [10, 10, 5]
    assert [p.start for p in pages] == [0, 10, 20]
    (error,) = [e for p in pages for e in p.errors]
    assert (error.source, error.line, error.record) == ("papers.jsonl.gz", 12, "2508.00012")
    positions = [p.announcements[0].position for page in pages for p in page.papers]
    assert positions == list(range(24))  # one day, counted across pages


def test_kaggle_file(tmp_path: Path) -> None:
    (page,) = read_file(FIXTURES / "kaggle_sample.jsonl")
    assert len(page.papers) == 6 and page.errors == []
    assert page.papers[0].source == "kaggle"


def test_truncated_gzip_stream_is_a_document_error(tmp_path: Path) -> None:
    rows = listing_rows(5000)
    blob = gzip.compress(b"\n".join(rows) + b"\n")
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DocumentError, match=r"cut\.jsonl\.gz: corrupt gzip stream"):
        for _ in read_file(path, batch_size=100):
            pass


def test_venue_name_from_file_name_or_argument(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "venues" / "paperlists" / "iclr2018.json.gz"
    (page,) = read_file(src)
    assert len(page.venue_papers) == 714
    assert {p.venue for p in page.venue_papers} == {"iclr2018"}
    copy = tmp_path / "whatever.json.gz"
    shutil.copy(src, copy)
    (page,) = read_file(copy, venue="ICLR 2018")
    assert page.venue_papers[0].venue == "ICLR 2018"


def test_xml_files_parse_whole(shared_data: Path) -> None:
    path = shared_data / "arxiv" / "fixtures" / "oai_pmh"
    (page,) = read_file(path / "listrecords_oai_dc_set-cs_2024-01-25_with_resumptionToken.xml")
    assert len(page.papers) == 5 and page.resumption_token == "6960524|1001"
    (page,) = read_file(shared_data / "arxiv" / "fixtures" / "arxiv_api" / "id_list_1605.08386.xml")
    assert page.papers[0].arxiv_id == "1605.08386"


def test_broken_xml_yields_nothing(tmp_path: Path) -> None:
    feed = (FIXTURES / "rss" / "cs.AI_2024-02-23.rss.xml").read_bytes()
    path = tmp_path / "feed.xml"
    path.write_bytes(feed[:2500])
    pages = read_file(path)
    with pytest.raises(DocumentError, match=r"feed\.xml:\d+: not well-formed"):
        next(pages)


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        next(read_file(FIXTURES / "kaggle_sample.jsonl", batch_size=0))
