"""`GET /api/query`, arXiv's query API over the papers held here: searches, id lists, paging
and sorting on both databases; our answers read back by the project's own parser of arXiv's
answers (the one that reads the recorded fixtures) and shaped like those recordings; arXiv's
error feed for bad input; and the `arxiv` PyPI client pointed at a live server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import arxiv
import pytest
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from app.db import store
from app.db.engine import make_engine
from app.ingest.arxiv_api import parse_api_response
from app.ingest.records import AnnounceKind, Announcement, PaperRecord, ParsedPage, UpstreamError
from app.ingest.records import Version as V
from app.settings import Settings
from tests.app.search.strategies import hostile_queries

FIXTURES = "arxiv/fixtures/arxiv_api"
ATOM = "{http://www.w3.org/2005/Atom}"


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def records() -> list[PaperRecord]:
    return [
        PaperRecord(
            arxiv_id="2601.00001",
            title="Diffusion Models for Protein Folding",
            abstract="We fold proteins with score-based diffusion models.",
            authors=["Yang Song", "Stefano Ermon"],
            primary_category="cs.LG",
            categories=["cs.LG", "q-bio.BM"],
            classes=["I.2.6"],
            version=2,
            versions=[V(1, _t("2026-01-05T10:00:00")), V(2, _t("2026-01-20T12:30:00"))],
            comments="Accepted at ICLR 2026",
            doi="10.1000/xyz123",
            first_submitted_at=_t("2026-01-05T10:00:00"),
            last_updated_at=_t("2026-01-20T12:30:00"),
            announcements=[
                Announcement("cs.LG", _t("2026-01-06T00:00:00").date(), AnnounceKind.NEW)
            ],
        ),
        PaperRecord(
            arxiv_id="2601.00002",
            title="Checkerboard Patterns in Quantum Criticality",
            abstract="A checkerboard lattice near a quantum critical point.",
            authors=["Adrian Del Maestro", "Bernd Rosenow"],
            primary_category="cond-mat.str-el",
            categories=["cond-mat.str-el"],
            version=1,
            comments="12 pages, 3 figures",
            journal_ref="Phys. Rev. B 99, 1 (2026)",
            first_submitted_at=_t("2026-01-10T08:00:00"),
            last_updated_at=_t("2026-01-10T08:00:00"),
        ),
        PaperRecord(
            arxiv_id="2601.00003",
            title="Attention Is Not All You Need for Diffusion",
            abstract="Diffusion transformers <b>without</b> attention & friends.",
            authors=["Ada Lovelace"],
            primary_category="cs.CL",
            categories=["cs.CL", "cs.LG"],
            version=1,
            first_submitted_at=_t("2026-01-15T09:00:00"),
            last_updated_at=_t("2026-01-15T09:00:00"),
        ),
        PaperRecord(
            arxiv_id="2512.00004",
            title="Flow Matching: a Survey",
            abstract="We survey flow matching for generative modelling.",
            authors=["Alan Turing"],
            primary_category="cs.CV",
            categories=["cs.CV"],
            version=3,
            first_submitted_at=_t("2025-12-01T00:00:00"),
            last_updated_at=_t("2026-01-25T18:00:00"),
        ),
        PaperRecord(
            arxiv_id="hep-th/9901001",
            title="Strings and Branes",
            abstract="Old-style identifiers still answer.",
            authors=["Edward Witten"],
            primary_category="hep-th",
            categories=["hep-th"],
            version=1,
            first_submitted_at=_t("1999-01-01T00:00:00"),
            last_updated_at=_t("1999-01-01T00:00:00"),
        ),
    ]


BY_ID = {r.arxiv_id: r for r in records()}


def _seed(settings: Settings) -> None:
    engine = make_engine(settings.database_url_resolved)
    with engine.begin() as conn:
        store.upsert_papers(conn, records())
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def client(
    request: pytest.FixtureRequest, site_settings: Callable[..., Settings]
) -> Iterator[TestClient]:
    """The site on each database, holding `records()`."""
    from app.main import create_app

    env = {"RATE_LIMIT_PER_MINUTE": "0"}
    if request.param == "postgresql":
        env["DATABASE_URL"] = request.getfixturevalue("pg_url")
    _seed(site_settings(**env))
    with TestClient(create_app()) as c:
        yield c


def ask(client: TestClient, **params: str | int) -> ParsedPage:
    r = client.get("/api/query?" + urlencode(params))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/atom+xml")
    return parse_api_response(r.content, "test")


def ids(page: ParsedPage) -> list[str]:
    return [p.arxiv_id for p in page.papers]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ti:diffusion", {"2601.00001", "2601.00003"}),
        ("diffusion", {"2601.00001", "2601.00003"}),
        ("au:del_maestro", {"2601.00002"}),
        ('au:"del maestro" AND ti:checkerboard', {"2601.00002"}),
        ("au:del_maestro ANDNOT ti:checkerboard", set()),
        ('ti:"protein folding"', {"2601.00001"}),
        ('ti:"folding protein"', set()),
        ("abs:diffusion ANDNOT cat:cs.CL", {"2601.00001"}),
        ("co:iclr", {"2601.00001"}),
        ('jr:"phys rev"', {"2601.00002"}),
        ("cat:cs.LG", {"2601.00001", "2601.00003"}),  # cross-lists count
        ("cat:cs.*", {"2601.00001", "2601.00003", "2512.00004"}),
        ("cat:cs.LG ANDNOT ti:protein", {"2601.00003"}),
        ("id:2601.00002v1 OR id:hep-th/9901001", {"2601.00002", "hep-th/9901001"}),
        ("submittedDate:[202601050000 TO 202601101200]", {"2601.00001", "2601.00002"}),
        ("lastUpdatedDate:[20260121 TO 20260131]", {"2512.00004"}),
        # AND binds tighter than OR: checkerboard, or (diffusion and lovelace).
        ("ti:checkerboard OR ti:diffusion AND au:lovelace", {"2601.00002", "2601.00003"}),
        ("(ti:checkerboard OR ti:diffusion) AND au:lovelace", {"2601.00003"}),
        ("ti:survey cat:hep-th", {"2512.00004", "hep-th/9901001"}),
        ("ti:diffusion AND (cat:cs.CV OR co:iclr)", {"2601.00001"}),
        ("rn:anything", set()),
        ("cat:no.SUCH", set()),
    ],
)
def test_search_matches(client: TestClient, query: str, expected: set[str]) -> None:
    page = ask(client, search_query=query, max_results=50)
    assert set(ids(page)) == expected
    assert page.total == len(expected)


def test_sorting_and_paging(client: TestClient) -> None:
    oldest_first = ask(
        client,
        search_query="cat:cs.* OR cat:hep-th OR cat:cond-mat.str-el",
        sortBy="submittedDate",
        sortOrder="ascending",
        max_results=10,
    )
    assert ids(oldest_first) == [
        "hep-th/9901001",
        "2512.00004",
        "2601.00001",
        "2601.00002",
        "2601.00003",
    ]
    updated = ask(client, search_query="cat:cs.*", sortBy="lastUpdatedDate")
    assert ids(updated) == ["2512.00004", "2601.00001", "2601.00003"]
    # Relevance (BM25 / ts_rank): the paper with both words ranks above the one with one.
    both_words = "all:diffusion OR all:attention"
    assert ids(ask(client, search_query=both_words)) == ["2601.00003", "2601.00001"]
    worst_first = ask(client, search_query=both_words, sortOrder="ascending")
    assert ids(worst_first) == ["2601.00001", "2601.00003"]
    # Pages of one, in a stable order, with arXiv's counters.
    seen = []
    for start in range(3):
        page = ask(
            client, search_query="cat:cs.*", sortBy="submittedDate", start=start, max_results=1
        )
        assert (page.total, page.start, len(page.papers)) == (3, start, 1)
        seen += ids(page)
    assert seen == ["2601.00003", "2601.00001", "2512.00004"]
    past_the_end = ask(client, search_query="cat:cs.*", start=3, max_results=5)
    assert (past_the_end.total, ids(past_the_end)) == (3, [])


def test_id_list(client: TestClient) -> None:
    page = ask(client, id_list="2601.00002,2601.00001v1,9999.99999,0808.05394,2601.00001")
    # In the list's order; unknown and never-issued ids simply missing; an older version
    # answers as that version with its own date.
    assert [(p.arxiv_id, p.version) for p in page.papers] == [
        ("2601.00002", 1),
        ("2601.00001", 1),
        ("2601.00001", 2),
    ]
    v1 = page.papers[1]
    assert v1.last_updated_at == _t("2026-01-05T10:00:00")
    assert page.papers[2].last_updated_at == _t("2026-01-20T12:30:00")
    # A version this instance has not seen is missing too.
    assert ids(ask(client, id_list="2601.00002v7")) == []
    # With a query: the listed papers that match it.
    both = ask(client, id_list="2601.00001,2601.00002,2601.00003", search_query="ti:diffusion")
    assert set(ids(both)) == {"2601.00001", "2601.00003"}
    # Dates sort an id list too.
    by_date = ask(client, id_list="2601.00001,2512.00004", sortBy="submittedDate")
    assert ids(by_date) == ["2601.00001", "2512.00004"]
    assert ids(ask(client, id_list="hep-th/9901001v1")) == ["hep-th/9901001"]


def test_answers_read_back_as_the_records_we_stored(client: TestClient) -> None:
    """Our Atom, through the parser that reads arXiv's recorded answers, gives back what the
    store holds, field by field."""
    page = ask(client, id_list=",".join(BY_ID), max_results=50)
    assert not page.errors
    assert sorted(ids(page)) == sorted(BY_ID)
    for got in page.papers:
        want = BY_ID[got.arxiv_id]
        for name in (
            "title",
            "abstract",
            "authors",
            "primary_category",
            "categories",
            "classes",
            "version",
            "comments",
            "journal_ref",
            "doi",
            "first_submitted_at",
            "last_updated_at",
        ):
            assert getattr(got, name) == getattr(want, name), (got.arxiv_id, name)


def _children(el: etree._Element) -> list[str]:
    return [
        etree.QName(c).localname if c.prefix is None else f"{c.prefix}:{etree.QName(c).localname}"
        for c in el
    ]


def test_feed_is_shaped_like_arxivs(client: TestClient, shared_data: Path) -> None:
    recorded = etree.fromstring(
        (shared_data / FIXTURES / "search_all-testing_start0_max10.xml").read_bytes()
    )
    r = client.get("/api/query?search_query=testing+OR+ti:protein&start=0&max_results=10")
    ours = etree.fromstring(r.content)
    assert r.content.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<feed xmlns:opensearch=")
    assert ours.nsmap == recorded.nsmap
    assert [c for c in _children(ours) if c != "entry"] == [
        c for c in _children(recorded) if c != "entry"
    ]
    title = ours.find(f"{ATOM}title").text
    assert (
        title
        == "arXiv Query: search_query=all:testing OR ti:protein&id_list=&start=0&max_results=10"
    )
    # The first recorded entry has a comment, a journal ref and a DOI, as 2601.00001 has
    # all but the journal ref: the same elements in the same order, less that one.
    want = [c for c in _children(recorded.find(f"{ATOM}entry")) if c != "arxiv:journal_ref"]
    got = _children(ours.find(f"{ATOM}entry"))
    squash = lambda names: [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]  # noqa: E731
    assert squash(got) == squash(want)
    entry = ours.find(f"{ATOM}entry")
    assert entry.find(f"{ATOM}id").text == "http://arxiv.org/abs/2601.00001v2"
    links = {(link.get("title"), link.get("href")) for link in entry.findall(f"{ATOM}link")}
    assert ("pdf", "https://arxiv.org/pdf/2601.00001v2") in links and (
        "doi",
        "https://doi.org/10.1000/xyz123",
    ) in links


def test_error_feed_is_arxivs(client: TestClient, shared_data: Path) -> None:
    recorded = etree.fromstring((shared_data / FIXTURES / "error400_id_list_abc.xml").read_bytes())
    r = client.get("/api/query?id_list=abc")
    assert r.status_code == 400
    ours = etree.fromstring(r.content)
    assert ours.nsmap == recorded.nsmap
    assert _children(ours) == _children(recorded)
    assert _children(ours.find(f"{ATOM}entry")) == _children(recorded.find(f"{ATOM}entry"))
    for path in (f"{ATOM}entry/{ATOM}id", f"{ATOM}entry/{ATOM}summary", f"{ATOM}entry/{ATOM}title"):
        assert ours.find(path).text == recorded.find(path).text
    with pytest.raises(UpstreamError) as caught:
        parse_api_response(r.content, "test")
    assert caught.value.code == "incorrect_id_format_for_abc"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"id_list": "2601.00001,nope"}, "incorrect id format for nope"),
        ({"search_query": "ti:a", "max_results": "ten"}, "max_results must be an integer"),
        ({"search_query": "ti:a", "max_results": "-1"}, "max_results must be non-negative"),
        ({"search_query": "ti:a", "start": "1.5"}, "start must be an integer"),
        ({"search_query": "ti:a", "start": "-3"}, "start must be non-negative"),
        (
            {"search_query": "ti:a", "sortBy": "date"},
            "sortBy must be in: relevance, lastUpdatedDate, submittedDate",
        ),
        (
            {"search_query": "ti:a", "sortOrder": "up"},
            "sortOrder must be in: ascending, descending",
        ),
        ({"search_query": "ti:a", "max_results": "2001"}, "max_results must be at most 2000"),
        ({"search_query": "ti:a", "max_results": "9" * 40}, "max_results must be at most 2000"),
        (
            {"search_query": "ti:a", "start": "29000", "max_results": "1001"},
            "start + max_results must be at most 30000",
        ),
        ({"search_query": 'ti:"open'}, "Quotation does not close"),
        ({"search_query": "foo:bar"}, "Invalid field: foo"),
        ({"search_query": "ti:a AND"}, "Query ends with an operator: AND"),
        ({"search_query": "submittedDate:[2026 TO 2027]"}, "Invalid date in range: 2026"),
    ],
)
def test_bad_input_gets_the_error_feed(
    client: TestClient, params: dict[str, str], message: str
) -> None:
    r = client.get("/api/query?" + urlencode(params))
    assert r.status_code == 400
    with pytest.raises(UpstreamError) as caught:
        parse_api_response(r.content, "test")
    assert message in str(caught.value)


def test_limits_themselves_are_fine(client: TestClient) -> None:
    assert ask(client, search_query="ti:survey", max_results=2000).total == 1
    assert ask(client, search_query="ti:survey", start=28000, max_results=2000).papers == []
    # Neither a query nor ids: an empty answer, as arXiv's.
    assert ask(client).total == 0


def test_hostile_text_stays_inert(client: TestClient) -> None:
    r = client.get(
        "/api/query?" + urlencode({"search_query": 'ti:"<script>alert(1)</script>" OR abs:without'})
    )
    assert r.status_code == 200
    root = etree.fromstring(r.content)  # well-formed
    assert b"<script>" not in r.content and b"<b>without" not in r.content
    summary = root.find(f"{ATOM}entry/{ATOM}summary").text
    assert summary == "Diffusion transformers <b>without</b> attention & friends."
    assert client.head("/api/query?search_query=ti:survey").status_code == 200


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    query=st.one_of(hostile_queries(), st.text(max_size=80)),
    ids_=st.text(max_size=30),
    start=st.text(max_size=6),
)
def test_no_input_makes_a_server_error(
    client: TestClient, query: str, ids_: str, start: str
) -> None:
    r = client.get("/api/query", params={"search_query": query, "id_list": ids_, "start": start})
    assert r.status_code in (200, 400), r.text
    if r.headers["content-type"].startswith("application/json"):
        # A NUL character: the protocol guard refuses it before any route (app.web.protocol).
        assert r.status_code == 400 and "\x00" in query + ids_ + start
    else:
        etree.fromstring(r.content)


# --- the arXiv API's own client against a live server ------------------------------------


@pytest.fixture
def live_url(site_settings: Callable[..., Settings]) -> Iterator[str]:
    """The site served by uvicorn on 127.0.0.1 (a thread of this process)."""
    from app.main import create_app

    _seed(site_settings(RATE_LIMIT_PER_MINUTE="0"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/api/query?{{}}"
    server.should_exit = True
    thread.join(timeout=10)


def _client(url: str, page_size: int = 100) -> arxiv.Client:
    c = arxiv.Client(page_size=page_size, delay_seconds=0, num_retries=0)
    c.query_url_format = url
    return c


def test_arxiv_client_reads_us_like_arxiv(live_url: str) -> None:
    client = _client(live_url)
    found = list(client.results(arxiv.Search(query="ti:diffusion AND cat:cs.LG")))
    assert {r.get_short_id() for r in found} == {"2601.00001v2", "2601.00003v1"}
    paper = next(r for r in found if r.get_short_id() == "2601.00001v2")
    assert paper.title == "Diffusion Models for Protein Folding"
    assert [a.name for a in paper.authors] == ["Yang Song", "Stefano Ermon"]
    assert (paper.primary_category, paper.categories[:2]) == ("cs.LG", ["cs.LG", "q-bio.BM"])
    assert (paper.comment, paper.doi) == ("Accepted at ICLR 2026", "10.1000/xyz123")
    assert paper.pdf_url == "https://arxiv.org/pdf/2601.00001v2"
    assert paper.published == _t("2026-01-05T10:00:00")
    assert paper.updated == _t("2026-01-20T12:30:00")

    # An id list, with and without versions.
    listed = list(client.results(arxiv.Search(id_list=["2601.00002", "2601.00001v1"])))
    assert [r.get_short_id() for r in listed] == ["2601.00002v1", "2601.00001v1"]

    # Paging: pages of two across four papers, in date order, none lost or repeated.
    pager = _client(live_url, page_size=2)
    everything = "cat:cs.* OR cat:cond-mat.str-el"
    paged = list(
        pager.results(
            arxiv.Search(
                query=everything,
                max_results=None,
                sort_by=arxiv.SortCriterion.SubmittedDate,
                sort_order=arxiv.SortOrder.Ascending,
            )
        )
    )
    assert [r.get_short_id() for r in paged] == [
        "2512.00004v3",
        "2601.00001v2",
        "2601.00002v1",
        "2601.00003v1",
    ]
    newest = list(
        client.results(
            arxiv.Search(
                query=everything,
                max_results=2,
                sort_by=arxiv.SortCriterion.LastUpdatedDate,
            )
        )
    )
    assert [r.get_short_id() for r in newest] == ["2512.00004v3", "2601.00001v2"]

    # An error: arXiv's client raises on the 400.
    with pytest.raises(arxiv.HTTPError) as caught:
        list(client.results(arxiv.Search(id_list=["not-an-id"])))
    assert caught.value.status == 400
