"""Code, data and venue badges and LaTeX text macros on the pages, the JSON API and the feeds;
the has-code filter on the listing page (part of its cache key), the listing API and search."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from xml.etree import ElementTree

import feedparser
import pytest
from fastapi.testclient import TestClient

from app.db import store
from app.db.engine import make_engine
from app.ingest.records import AnnounceKind, Announcement, PaperRecord, VenuePaperRecord
from app.settings import Settings
from tests.app.web.test_pages import assert_html, site_app

DAY = date(2026, 3, 3)
HOSTILE = r'\href{javascript:alert(1)}{click me} \url{https://x.org/"><script>alert(2)</script>}'


def paper(n: int, title: str, abstract: str, comments: str | None = None) -> PaperRecord:
    return PaperRecord(
        arxiv_id=f"2603.{n:05d}",
        title=title,
        abstract=abstract,
        authors=["Ada Lovelace"],
        primary_category="cs.CL",
        categories=["cs.CL"],
        version=1,
        comments=comments,
        first_submitted_at=datetime(2026, 3, 1, tzinfo=UTC),
        announcements=[Announcement("cs.CL", DAY, AnnounceKind.NEW, n)],
    )


PAPERS = [
    paper(
        1,
        r"\emph{Sparse} attention, \textbf{fast}",
        r"We study attention~\cite{vaswani}. Code: https://github.com/ada/sparse. Data: "
        r"https://huggingface.co/datasets/ada/long\footnote{Under \textit{CC-BY}.} -- ok.",
        comments="Accepted at ICLR 2026 (oral)",
    ),
    paper(2, "Dense attention", "No code here, $x^2$ math.", comments="NeurIPS 2025"),
    paper(3, "Hostile macros", HOSTILE, comments="Project page: https://ada.github.io/h"),
]


@pytest.fixture
def client(site_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    engine = make_engine(site_settings().database_url_resolved)
    with engine.begin() as conn:
        store.upsert_papers(conn, PAPERS)
        # ICLR 2026's list is held here, NeurIPS 2025's is not.
        store.upsert_venue(
            conn,
            "iclr2026",
            [
                VenuePaperRecord(
                    venue="iclr2026",
                    venue_paper_id="x1",
                    title="Sparse attention, fast",
                    authors=["Ada Lovelace"],
                )
            ],
        )
        store.link_venues(conn)
    engine.dispose()
    with TestClient(site_app()) as c:
        yield c


def card(html: str, arxiv_id: str) -> str:
    found = re.search(
        rf'<article class="paper" id="{re.escape(arxiv_id)}".*?</article>', html, re.S
    )
    assert found, arxiv_id
    return found.group(0)


def ids_in(html: str) -> list[str]:
    return re.findall(r'<article class="paper" id="([^"]+)"', html)


def test_cards_show_code_data_and_venue_badges(client: TestClient) -> None:
    html = assert_html(client.get("/arxiv/cs.CL"))
    first = card(html, "2603.00001")
    assert '<a class="badge badge-code" href="https://github.com/ada/sparse"' in first
    assert '<a class="badge badge-dataset" href="https://huggingface.co/datasets/ada/long"' in first
    # The venue we hold links to its page; one we do not hold is a plain badge.
    assert '<a class="badge badge-venue" href="/venue/iclr2026" data-venue' in first
    assert ">ICLR 2026 Oral</a>" in first
    second = card(html, "2603.00002")
    assert '<span class="badge badge-venue" data-venue>NeurIPS 2025</span>' in second
    assert "badge-code" not in second
    assert 'class="badge badge-project" href="https://ada.github.io/h"' in card(html, "2603.00003")


def test_latex_macros_render_and_hostile_ones_stay_inert(client: TestClient) -> None:
    html = assert_html(client.get("/arxiv/cs.CL"))
    first = card(html, "2603.00001")
    assert "<em>Sparse</em> attention, <strong>fast</strong>" in first
    assert r"\cite" not in first and r"\footnote" not in first and r"\emph" not in first
    assert "We study attention. Code:" in first
    assert " (Under <em>CC-BY</em>.) \u2013 ok." in first
    hostile = card(html, "2603.00003")
    assert "javascript:" not in hostile and "<script>alert(2)" not in hostile
    assert "click me" in hostile
    # A "URL" holding a quote and tags is no link: escaped text.
    assert 'href="https://x.org/' not in hostile
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in hostile
    # The math in the second paper still renders as MathML.
    assert "<math" in card(html, "2603.00002")


def test_search_page_renders_macros(client: TestClient) -> None:
    html = assert_html(client.get("/search", params={"q": "sparse"}))
    assert "<em>Sparse</em>" in html or "<em><mark>Sparse</mark></em>" in html
    assert r"\footnote" not in html and r"\emph" not in html


def test_the_paper_page_title_is_plain_text(client: TestClient) -> None:
    html = assert_html(client.get("/arxiv/2603.00001"))
    assert "<title>Sparse attention, fast · Papershelf</title>" in html


def test_has_code_filter_on_the_listing_page(client: TestClient) -> None:
    everything = assert_html(client.get("/arxiv/cs.CL", params={"date": str(DAY)}))
    assert ids_in(everything) == ["2603.00001", "2603.00002", "2603.00003"]
    for _ in range(2):  # the second answer comes from the page cache: its own key
        only = client.get("/arxiv/cs.CL", params={"date": str(DAY), "has_code": "1"})
        assert ids_in(assert_html(only)) == ["2603.00001"]
        assert "only papers with code" in only.text
        assert "data-has-code checked" in only.text
        assert only.headers["etag"] != client.get("/arxiv/cs.CL").headers["etag"]
    # The day links keep the filter; 0 means no filter.
    zero = client.get("/arxiv/cs.CL", params={"has_code": "0"})
    assert ids_in(zero.text) == ids_in(everything)
    # Revalidation with the unfiltered page's ETag does not answer the filtered page.
    etag = client.get("/arxiv/cs.CL").headers["etag"]
    again = client.get("/arxiv/cs.CL?has_code=1", headers={"If-None-Match": etag})
    assert again.status_code == 200 and ids_in(again.text) == ["2603.00001"]


@pytest.mark.parametrize("value", ["yes please", "2", "<b>"])
def test_a_bad_has_code_is_a_400_page(client: TestClient, value: str) -> None:
    r = client.get("/arxiv/cs.CL", params={"has_code": value})
    html = assert_html(r, 400)
    assert "has_code must be 1 or 0" in html and "<b>" not in html


def test_the_listing_api_filters_and_carries_badges(client: TestClient) -> None:
    r = client.get("/api/v1/listings/cs.CL", params={"has_code": "true"})
    assert r.status_code == 200
    papers = [p for s in r.json()["sections"] for p in s["papers"]]
    assert [p["arxiv_id"] for p in papers] == ["2603.00001"]
    first = papers[0]
    assert first["has_code"] is True and first["venue"] == "ICLR 2026 Oral"
    assert first["venue_url"] == "/venue/iclr2026"
    assert {"kind": "code", "url": "https://github.com/ada/sparse", "label": "GitHub"} in first[
        "links"
    ]
    without = client.get("/api/v1/listings/cs.CL", params={"has_code": "false"}).json()
    ids = [p["arxiv_id"] for s in without["sections"] for p in s["papers"]]
    assert ids == ["2603.00002", "2603.00003"]
    # A dated day the filter empties is an empty list, not a 404.
    empty = client.get(
        "/api/v1/listings/cs.CL", params={"has_code": "true", "date": str(DAY), "kind": "cross"}
    )
    assert empty.status_code == 200 and empty.json()["total"] == 0
    bad = client.get("/api/v1/listings/cs.CL", params={"has_code": "maybe"})
    assert bad.status_code == 422 and "error" in bad.json()


def test_search_api_has_code(client: TestClient) -> None:
    r = client.get("/api/v1/search", params={"q": "attention", "has_code": "true"})
    assert r.status_code == 200, r.text
    assert [h["arxiv_id"] for h in r.json()["hits"]] == ["2603.00001"]
    assert r.json()["query"] == "attention"
    r = client.get("/api/v1/search", params={"q": "attention has:code"})
    assert [h["arxiv_id"] for h in r.json()["hits"]] == ["2603.00001"]
    r = client.get("/api/v1/search", params={"q": "attention", "has_code": "false"})
    assert [h["arxiv_id"] for h in r.json()["hits"]] == ["2603.00002"]
    assert client.get("/api/v1/search", params={"q": "x", "has_code": "no!"}).status_code == 422


def test_feeds_carry_plain_text(client: TestClient) -> None:
    r = client.get("/arxiv/cs.CL/feed")
    assert r.status_code == 200
    ElementTree.fromstring(r.content)
    feed = feedparser.parse(r.content)
    entries = {e.id.rsplit("/", 1)[1]: e for e in feed.entries}
    first = entries["2603.00001"]
    assert first.title == "Sparse attention, fast"
    assert "We study attention. Code: https://github.com/ada/sparse." in first.summary
    assert "(Under CC-BY.) \u2013 ok." in first.summary
    hostile = entries["2603.00003"].summary
    assert "javascript" not in hostile and "click me" in hostile
    search = feedparser.parse(client.get("/search/feed", params={"q": "sparse"}).content)
    assert search.entries[0].title == "Sparse attention, fast"
