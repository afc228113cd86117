from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.ingest.arxiv_api import parse_api_response
from app.ingest.records import DocumentError, UpstreamError


@pytest.fixture
def api(shared_data: Path) -> Path:
    return shared_data / "arxiv" / "fixtures" / "arxiv_api"


def parse(api: Path, name: str):  # type: ignore[no-untyped-def]
    return parse_api_response((api / name).read_bytes(), name)


def test_search_page_with_totals(api: Path) -> None:
    page = parse(api, "search_all-testing_start0_max10.xml")
    assert (page.total, page.start) == (214881, 0)
    assert len(page.papers) == 10 and page.errors == []
    first = page.papers[0]
    assert first.arxiv_id == "2202.12139" and first.version == 1
    assert first.title.startswith("Testing Deep Learning Models: A First Comparative Study")
    assert first.authors == ["Mohit Kumar Ahuja", "Arnaud Gotlieb", "Helge Spieker"]
    assert first.primary_category == "cs.SE" and first.categories == ["cs.SE", "cs.LG"]
    assert first.doi == "10.1109/ICSTW55395.2022.00035"
    assert first.journal_ref and first.journal_ref.startswith("Artificial Intelligence in Software")
    assert first.comments == "Artificial Intelligence in Software Testing 2022 workshop @ ICST 2022"
    assert first.first_submitted_at == datetime(2022, 2, 24, 15, 5, 19, tzinfo=UTC)
    assert first.source == "arxiv-api" and first.line is not None
    # The recorded bodies were decoded as Latin-1 once; names come out right anyway.
    assert page.papers[1].authors[0] == "Aurora Ramírez"


def test_second_page_and_versions(api: Path) -> None:
    page = parse(api, "search_all-testing_start10_max10.xml")
    assert (page.total, page.start) == (214881, 10)
    paper = next(p for p in page.papers if p.arxiv_id == "2403.16981")
    assert paper.version == 2
    assert paper.first_submitted_at == datetime(2024, 3, 25, 17, 42, 32, tzinfo=UTC)
    assert paper.last_updated_at == datetime(2025, 5, 24, 5, 50, 33, tzinfo=UTC)
    # math.IT and stat.TH are aliases of cs.IT and math.ST: no duplicates after canonicalising.
    assert paper.categories == ["math.ST", "cs.IT", "stat.ML"]


def test_single_id(api: Path) -> None:
    page = parse(api, "id_list_1605.08386.xml")
    assert [p.arxiv_id for p in page.papers] == ["1605.08386"]
    assert page.papers[0].primary_category == "math.CO"


def test_id_list_with_one_unknown_id(api: Path) -> None:
    page = parse(api, "id_list_0808.05394_1707.08567.xml")
    assert [p.arxiv_id for p in page.papers] == ["1707.08567"]
    paper = page.papers[0]
    assert len(paper.authors) == 34 and paper.authors[-2] == "Dirk Wübben"
    assert paper.comments and paper.comments.startswith("44 pages")


def test_legacy_2016_format(api: Path) -> None:
    page = parse(api, "legacy2016_id_list_1111.2011v2.xml")
    (paper,) = page.papers
    assert (paper.arxiv_id, paper.version) == ("1111.2011", 2)
    assert paper.title == (
        "Quantum Criticality for Extended Nodes on a Bethe Lattice in the Large Connectivity Limit"
    )
    assert "\n" not in paper.abstract and paper.abstract.startswith("Theoretical description")
    assert paper.doi == "10.1103/PhysRevB.85.115117"
    assert paper.journal_ref == "Phys. Rev. B 85, 115117 (2012)"
    assert paper.categories == ["cond-mat.str-el", "cond-mat.stat-mech"]
    assert paper.first_submitted_at == datetime(2011, 11, 8, 18, 48, 36, tzinfo=UTC)
    assert paper.last_updated_at == datetime(2012, 4, 2, 12, 38, 54, tzinfo=UTC)


def test_legacy_search_has_old_style_ids(api: Path) -> None:
    page = parse(api, "legacy2016_search_au-del_maestro_start0_max10.xml")
    assert (page.total, len(page.papers)) == (31, 10)
    assert "cond-mat/0412498" in [p.arxiv_id for p in page.papers]


def test_empty_result(api: Path) -> None:
    page = parse(api, "empty_id_list_0000.0000.xml")
    assert page.papers == [] and page.errors == [] and page.total == 0


def test_error_feed_raises_upstream_error(api: Path) -> None:
    with pytest.raises(UpstreamError, match="incorrect id format for abc") as info:
        parse(api, "error400_id_list_abc.xml")
    assert info.value.code == "incorrect_id_format_for_abc"


FEED = """<?xml version='1.0' encoding='UTF-8'?>
<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"
      xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns="http://www.w3.org/2005/Atom">
  <opensearch:totalResults>{n}</opensearch:totalResults>
  <opensearch:startIndex>0</opensearch:startIndex>
{entries}
</feed>
"""
ENTRY = """  <entry>
    <id>{id}</id>
    <title>{title}</title>
    <summary>Some abstract.</summary>
    <published>2024-01-02T03:04:05Z</published>
    <updated>2024-01-02T03:04:05Z</updated>
    <author><name>A. Author</name></author>
    <arxiv:primary_category term="{primary}"/>
    <category term="{primary}"/>
    <category term="I.2.7"/>
    <category term="68T05"/>
  </entry>"""


def feed(*entries: dict[str, str]) -> bytes:
    body = "\n".join(ENTRY.format(**{"title": "T", "primary": "cs.AI", **e}) for e in entries)
    return FEED.format(n=len(entries), entries=body).encode()


def test_bad_entries_are_reported_and_the_rest_kept() -> None:
    data = feed(
        {"id": "http://arxiv.org/abs/2401.00001v1"},
        {"id": "http://arxiv.org/abs/2401.00002v1", "title": ""},
        {"id": "http://arxiv.org/abs/bogus"},
        {"id": "http://arxiv.org/abs/2401.00004v2", "primary": "cs.XX"},
        {"id": "http://arxiv.org/abs/2401.00005v1", "title": 'Schr\\"odinger'},
    )
    page = parse_api_response(data, "q.xml")
    assert [p.arxiv_id for p in page.papers] == ["2401.00001", "2401.00005"]
    assert page.papers[1].title == "Schrödinger"
    assert page.papers[0].classes == ["I.2.7", "68T05"]  # ACM/MSC terms are not categories
    errors = {e.record: e for e in page.errors}
    assert "title" in errors["2401.00002"].message
    assert "cs.XX" in errors["2401.00004"].message
    assert any("bogus" in (e.record or "") for e in page.errors)
    assert all(e.source == "q.xml" and e.line for e in page.errors)
    assert errors["2401.00002"].line == 18  # where that entry starts


def test_truncated_document_raises() -> None:
    data = feed({"id": "http://arxiv.org/abs/2401.00001v1"})
    with pytest.raises(DocumentError, match=r"q\.xml:\d+: not well-formed") as info:
        parse_api_response(data[: len(data) // 2], "q.xml")
    assert info.value.line


def test_wrong_encoding_raises() -> None:
    data = feed({"id": "http://arxiv.org/abs/2401.00001v1", "title": "Caf\xe9"})
    latin1 = data.decode().encode("latin-1")  # declared UTF-8, written as Latin-1
    with pytest.raises(DocumentError, match="encoding") as info:
        parse_api_response(latin1, "q.xml")
    assert info.value.line == 8  # the title line


@pytest.mark.parametrize("data", [b"", b"   \n", b"<html><body>rate limited</body></html>"])
def test_not_a_feed_raises(data: bytes) -> None:
    with pytest.raises(DocumentError):
        parse_api_response(data, "q.xml")


def test_entity_expansion_is_refused() -> None:
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>&b;</title></entry></feed>"""
    with pytest.raises(DocumentError, match="DOCTYPE"):
        parse_api_response(bomb, "q.xml")
    xxe = b"""<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<feed xmlns="http://www.w3.org/2005/Atom"><title>&x;</title></feed>"""
    with pytest.raises(DocumentError):
        parse_api_response(xxe, "q.xml")
