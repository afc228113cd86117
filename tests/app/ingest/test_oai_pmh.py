from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.ingest.oai_pmh import OaiPage, parse_oai_pmh
from app.ingest.records import DocumentError, ParsedPage, UpstreamError, Version

OURS = Path(__file__).resolve().parents[2] / "fixtures" / "oai_pmh"


@pytest.fixture
def real(shared_data: Path) -> Path:
    return shared_data / "arxiv" / "fixtures" / "oai_pmh"


def parse(folder: Path, name: str) -> OaiPage:
    return parse_oai_pmh((folder / name).read_bytes(), name)


def test_oai_dc_list_with_resumption_token(real: Path) -> None:
    page = parse(real, "listrecords_oai_dc_set-cs_2024-01-25_with_resumptionToken.xml")
    assert isinstance(page, ParsedPage)
    assert page.resumption_token == "6960524|1001"
    assert (page.total, page.start) == (1162, 0)
    assert [p.arxiv_id for p in page.papers] == [
        "1303.2033",
        "2401.14034",
        "2401.14036",
        "2401.14038",
        "2401.14040",
    ]
    first = page.papers[0]
    # oai_dc subjects are names; they map back to ids, first one taken as primary.
    assert first.categories == ["cs.DS", "cs.IT", "math.NA"]
    assert first.primary_category == "cs.DS"
    assert first.authors == ["Vilnis Liepins"]
    assert first.comments == "32 pages, 9 figures"
    assert first.first_submitted_at == datetime(2013, 3, 8, tzinfo=UTC)
    assert first.last_updated_at == datetime(2024, 1, 23, tzinfo=UTC)
    assert first.source == "oai:oai_dc"
    last = page.papers[-1]
    assert last.authors == ["Francesco Periti", "Haim Dubossarsky", "Nina Tahmasebi"]
    assert last.categories == ["cs.CL"]
    assert last.comments == "Accepted to the Findings of EACL 2024"
    assert page.papers[1].comments is None


def test_arxiv_format_list(real: Path) -> None:
    page = parse(real, "listrecords_arXiv_set-physics-hep-th_2017-12-14.xml")
    assert page.resumption_token is None and page.errors == []
    first = page.papers[0]
    assert first.arxiv_id == "1412.8323"
    assert first.authors == ["Philipp A Hoehn"]
    # primary first; math.MP is an alias of math-ph and is not repeated
    assert first.categories == ["quant-ph", "gr-qc", "hep-th", "math-ph", "physics.hist-ph"]
    assert first.license == "http://creativecommons.org/licenses/by/4.0/"
    assert first.title == (
        "Toolbox for reconstructing quantum theory from rules on information acquisition"
    )
    assert first.first_submitted_at == datetime(2014, 12, 29, tzinfo=UTC)
    assert first.last_updated_at == datetime(2017, 12, 13, tzinfo=UTC)
    assert first.version is None  # the arXiv format does not say
    second = page.papers[1]
    assert second.authors == ["Luis B. Castro", "Edilberto O. Silva"]
    assert second.journal_ref == "J. Phys. A: Math. Theor. 51 (2018) 035201"


def test_arxiv_format_get_record(real: Path) -> None:
    page = parse(real, "getrecord_arXiv_1401.2122.xml")
    (paper,) = page.papers
    assert paper.arxiv_id == "1401.2122"
    assert paper.categories == ["math.AP", "hep-th", "math-ph", "math.DG", "nlin.SI"]
    assert paper.classes == ["37K05", "37K10", "53D10"]  # msc-class
    assert paper.doi == "10.1007/s11005-017-1013-4"
    assert paper.comments and "\n" not in paper.comments


def test_arxiv_raw_versions_and_paging() -> None:
    page = parse(OURS, "listrecords_arXivRaw_set-cs_with_resumptionToken.xml")
    assert page.resumption_token == "7133542|1001"
    assert (page.total, page.start) == (3201, 0)
    assert page.deleted == ["2405.99999"]  # skipped, but reported
    assert [p.arxiv_id for p in page.papers] == ["0704.0001", "2311.04567", "cs/0112017"]
    first = page.papers[0]
    assert first.versions == [
        Version(1, datetime(2007, 4, 2, 19, 18, 42, tzinfo=UTC), "424kb"),
        Version(2, datetime(2007, 7, 24, 20, 10, 27, tzinfo=UTC), "430kb"),
    ]
    assert first.version == 2
    assert first.first_submitted_at == datetime(2007, 4, 2, 19, 18, 42, tzinfo=UTC)
    assert first.last_updated_at == datetime(2007, 7, 24, 20, 10, 27, tzinfo=UTC)
    assert first.authors == ["C. Balázs", "E. L. Berger", "P. M. Nadolsky", "C.-P. Yuan"]
    assert first.source == "oai:arXivRaw"
    second = page.papers[1]
    assert second.version == 3
    assert second.authors == ["Ingrid Sørensen", "Günter Müller", "Hiroshi Tanaka"]
    assert second.classes == ["68T50", "I.2.7", "I.2.6"]
    assert second.categories == ["cs.CL", "cs.LG", "stat.ML"]
    assert "$\\mathcal{O}(n \\log n)$" in second.abstract
    assert page.papers[2].version == 1


def test_arxiv_raw_get_record() -> None:
    page = parse(OURS, "getrecord_arXivRaw_2311.04567.xml")
    (paper,) = page.papers
    assert paper.arxiv_id == "2311.04567" and paper.version == 2
    assert paper.authors == ["Ingrid Sorensen", "Hiroshi Tanaka"]
    assert page.resumption_token is None and page.deleted == []


def test_no_records_match_is_an_empty_page() -> None:
    page = parse(OURS, "error_noRecordsMatch.xml")
    assert page.papers == [] and page.errors == [] and page.resumption_token is None


def test_bad_resumption_token_raises() -> None:
    with pytest.raises(UpstreamError) as info:
        parse(OURS, "error_badResumptionToken.xml")
    assert info.value.code == "badResumptionToken"


HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">
<ListRecords>
"""
TAIL = """<resumptionToken cursor="1000" completeListSize="2500"></resumptionToken>
</ListRecords>
</OAI-PMH>
"""
RECORD = """<record>
<header><identifier>oai:arXiv.org:{id}</identifier><datestamp>2024-01-01</datestamp></header>
<metadata>
<arXiv xmlns="http://arxiv.org/OAI/arXiv/">
<id>{id}</id><created>2024-01-01</created>
<authors><author><keyname>Doe</keyname><forenames>Jane</forenames></author></authors>
<title>{title}</title><categories>{cats}</categories><abstract>An abstract.</abstract>
</arXiv>
</metadata>
</record>
"""


def records(*rows: dict[str, str]) -> bytes:
    body = "".join(RECORD.format(**{"title": "A title", "cats": "cs.AI", **r}) for r in rows)
    return (HEAD + body + TAIL).encode()


def test_bad_records_are_reported_and_the_rest_kept() -> None:
    data = records(
        {"id": "2401.00001"},
        {"id": "2401.00002", "title": ""},
        {"id": "2401.00003", "cats": "cs.XX cs.AI"},
        {"id": "not-an-id"},
        {"id": "2401.00005", "cats": "cs.LG cs.AI"},
    )
    page = parse_oai_pmh(data, "oai.xml")
    assert [p.arxiv_id for p in page.papers] == ["2401.00001", "2401.00005"]
    assert [e.record for e in page.errors] == [
        "2401.00002",
        "2401.00003",
        "oai:arXiv.org:not-an-id",
    ]
    assert "title" in page.errors[0].message
    assert "cs.XX" in page.errors[1].message
    assert [e.line for e in page.errors] == [14, 24, 34]  # where each <record> starts
    # An empty token on the last page means the list is complete.
    assert page.resumption_token is None and page.total == 2500 and page.start == 1000


def test_truncated_document_raises() -> None:
    data = records({"id": "2401.00001"}, {"id": "2401.00002"})
    with pytest.raises(DocumentError, match="not well-formed"):
        parse_oai_pmh(data[:-40], "oai.xml")


def test_wrong_encoding_raises() -> None:
    data = records({"id": "2401.00001", "title": "Caf\xe9 society"})
    with pytest.raises(DocumentError, match="encoding") as info:
        parse_oai_pmh(data.decode().encode("latin-1"), "oai.xml")
    assert info.value.line == 10  # the title line


def test_not_oai_raises() -> None:
    with pytest.raises(DocumentError, match="not an OAI-PMH"):
        parse_oai_pmh(b"<feed xmlns='http://www.w3.org/2005/Atom'/>", "oai.xml")


def test_oai_dc_falls_back_to_set_spec_and_keeps_codes_as_classes() -> None:
    data = b"""<?xml version="1.0" encoding="UTF-8"?>
<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><GetRecord><record>
<header><identifier>oai:arXiv.org:2401.00009</identifier><datestamp>2024-01-05</datestamp>
<setSpec>cs:cs:AI</setSpec></header>
<metadata><oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/"
 xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:title>A title</dc:title><dc:creator>Doe, Jane</dc:creator>
<dc:subject>Something Unlisted</dc:subject><dc:subject>68T05</dc:subject>
<dc:description>Abstract.</dc:description><dc:description>A comment without prefix</dc:description>
<dc:date>2024-01-02</dc:date>
<dc:identifier>http://arxiv.org/abs/2401.00009</dc:identifier>
<dc:identifier>J. Something 1 (2024) 2</dc:identifier>
<dc:identifier>doi:10.1000/xyz</dc:identifier>
</oai_dc:dc></metadata></record></GetRecord></OAI-PMH>"""
    (paper,) = parse_oai_pmh(data, "x.xml").papers
    assert paper.categories == ["cs.AI"] and paper.primary_category == "cs.AI"
    assert paper.classes == ["Something Unlisted", "68T05"]
    assert paper.authors == ["Jane Doe"]
    assert paper.comments == "A comment without prefix"
    assert (paper.doi, paper.journal_ref) == ("10.1000/xyz", "J. Something 1 (2024) 2")
