"""The browser pages: day listings, paper pages, search, venues; HTML errors, never a 500.

The app is `app.main.app` with `app.web.feeds.router` added when app/main.py does not
include it yet (see `site_app`), on a fresh SQLite store per test.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.db import store
from app.db.engine import make_engine
from app.ingest.records import AnnounceKind, Announcement, PaperRecord, VenuePaperRecord
from app.settings import Settings

D1, D2 = date(2026, 3, 2), date(2026, 3, 3)
EVIL_TITLE = '<script>alert("owned")</script> Attacks & defences for $x^2$'
LONG_AUTHORS = [f"Author Number{i}" for i in range(15)]
SCRIPT_TAG = '<script src="/static/papershelf.js"></script>'


def site_app() -> FastAPI:
    """A new real app, built with this test's settings: its own rate-limit buckets and
    page caches, so what one test asked for never counts against another."""
    from app.main import create_app

    return create_app()


def seed_records() -> list[PaperRecord]:
    new, cross, replace = AnnounceKind.NEW, AnnounceKind.CROSS, AnnounceKind.REPLACE
    return [
        PaperRecord(
            arxiv_id="2603.00001",
            title="Sparse attention for long documents",
            abstract=r"We bound the error by $\alpha + \beta^2$ and study attention spans.",
            authors=LONG_AUTHORS,
            primary_category="cs.CL",
            categories=["cs.CL", "cs.LG"],
            version=2,
            comments="Code at https://github.com/example/sparse?x=1&y=2. 9 pages",
            first_submitted_at=datetime(2026, 2, 27, tzinfo=UTC),
            announcements=[
                Announcement("cs.CL", D2, new, 0),
                Announcement("cs.LG", D2, cross, 3),
            ],
        ),
        PaperRecord(
            arxiv_id="2603.00002",
            title=EVIL_TITLE,
            abstract='An <img src=x onerror="alert(1)"> abstract about attention.',
            authors=["Mallory <b>Evil</b>"],
            primary_category="cs.LG",
            categories=["cs.LG", "cs.CY"],
            comments="javascript:alert(1) <a href=x>not a link</a>",
            announcements=[Announcement("cs.LG", D2, new, 1)],
        ),
        PaperRecord(
            arxiv_id="2603.00003",
            title="Replaced paper on agents",
            abstract="Agents plan.",
            authors=["Grace Hopper"],
            primary_category="cs.AI",
            categories=["cs.AI"],
            version=3,
            announcements=[Announcement("cs.AI", D2, replace, 2)],
        ),
        PaperRecord(
            arxiv_id="2603.00004",
            title="An older day",
            abstract="Earlier.",
            authors=["Alan Turing"],
            primary_category="cs.CL",
            categories=["cs.CL"],
            announcements=[Announcement("cs.CL", D1, new, 0)],
        ),
        PaperRecord(
            arxiv_id="hep-th/9901001",
            title="Schrödinger operators on strings",
            abstract="We study the spectrum.",
            authors=["Erwin Example"],
            primary_category="hep-th",
            categories=["hep-th"],
            announcements=[Announcement("hep-th", date(1999, 1, 4), new)],
        ),
    ]


def make_client(site_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    engine = make_engine(site_settings().database_url_resolved)
    with engine.begin() as conn:
        store.upsert_papers(conn, seed_records())
        store.upsert_venue(
            conn,
            "iclr2018",
            [
                VenuePaperRecord(
                    venue="iclr2018",
                    venue_paper_id="abc",
                    title="Sparse attention for long documents",
                    authors=["Ada Lovelace"],
                    abstract="Venue abstract.",
                    status="Poster",
                    tldr="Sparse <attention> works.",
                    site="https://openreview.net/forum?id=abc",
                ),
                VenuePaperRecord(
                    venue="iclr2018",
                    venue_paper_id="def",
                    title="<i>Unlinked</i> venue paper",
                    authors=["Bob"],
                    site="javascript:alert(1)",
                    status="Oral",
                ),
            ],
        )
        store.link_venues(conn)
    engine.dispose()
    with TestClient(site_app()) as c:
        yield c


@pytest.fixture
def client(site_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from make_client(site_settings)


def assert_html(r, status: int = 200) -> str:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    # No inline scripts or handlers: the one script is the external reader-tools file
    # (a CSP of script-src 'self' holds), and the pages work without it.
    rest = r.text.replace(SCRIPT_TAG, "", 1)
    assert "<script" not in rest
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", rest, re.IGNORECASE)
    return r.text


# --- day listings -----------------------------------------------------------------------


def test_latest_day_listing(client: TestClient) -> None:
    page = assert_html(client.get("/arxiv/cs.CL+cs.LG"))
    assert "Tue, 03 Mar 2026" in page
    assert "2 papers, 2 new" in page
    assert re.search(r'<details class="section" id="new" open>', page)
    assert 'New submissions <span class="count">(2)</span>' in page
    assert 'href="/arxiv/cs.CL+cs.LG?date=2026-03-02' in page  # previous day
    assert 'href="/arxiv/cs.CL+cs.LG/feed"' in page
    assert 'href="/static/papershelf.css"' in page
    # The sparse paper is in both lists but listed once, as new.
    assert page.count(' id="2603.00001"') == 1


def test_exclusion_and_other_days(client: TestClient) -> None:
    page = assert_html(client.get("/arxiv/cs.CL+cs.LG-cs.CY"))
    assert "1 paper, 1 new" in page
    assert "2603.00002" not in page
    old = assert_html(client.get("/arxiv/cs.CL", params={"date": "2026-03-02"}))
    assert "An older day" in old and "Sparse attention" not in old
    assert 'href="/arxiv/cs.CL?date=2026-03-03' in old  # next day
    # The day list beside the listing links every stored day.
    assert '<a href="/arxiv/cs.CL?date=2026-03-03">2026-03-03</a>' in old


def test_replacements_section_and_alias(client: TestClient) -> None:
    page = assert_html(client.get("/arxiv/cs.AI"))
    assert 'Replacements <span class="count">(1)</span>' in page
    assert "1 paper, 0 new, 1 replacements" in page
    assert "v3" in page


def test_listing_sorts(client: TestClient) -> None:
    page = assert_html(
        client.get("/arxiv/cs.CL+cs.LG", params={"sort": "keywords", "kw": "defences"})
    )
    # The keyword match comes first within the new section.
    assert page.index('id="2603.00002"') < page.index('id="2603.00001"')
    assert 'value="defences"' in page
    assert_html(client.get("/arxiv/cs.LG", params={"sort": "popularity"}))
    bad = assert_html(client.get("/arxiv/cs.LG", params={"sort": "random"}), 400)
    assert "sort must be one of" in bad


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/arxiv/cs.XX", {}, 400, "unknown category &#39;cs.XX&#39;"),
        ("/arxiv/cs.AI+nonsense", {}, 400, "unknown category"),
        ("/arxiv/-cs.AI", {}, 400, "selects no category"),
        ("/arxiv/2513.00001", {}, 400, "month 13 does not exist"),
        ("/arxiv/cs.CL", {"date": "2026-02-30"}, 400, "is not a date"),
        ("/arxiv/cs.CL", {"date": "yesterday"}, 400, "is not a date"),
        ("/arxiv/cs.CL", {"date": "2026-03-04"}, 404, "No papers for cs.CL"),
        ("/arxiv/2501.99999", {}, 404, "not yet fetched"),
        ("/arxiv/%3Cscript%3E", {}, 400, "&lt;script&gt;"),
        ("/arxiv/", {}, 400, "Name a category or a paper id"),
        ("/arxiv/" + ",".join(f"2501.{i:05d}" for i in range(1, 300)), {}, 400, "at most 200"),
    ],
)
def test_errors_are_html_pages(
    client: TestClient, path: str, params: dict[str, str], status: int, message: str
) -> None:
    page = assert_html(client.get(path, params=params), status)
    assert message in page


def test_empty_category(client: TestClient) -> None:
    page = assert_html(client.get("/arxiv/astro-ph.CO"))
    assert "No papers for astro-ph.CO are stored yet" in page


# --- paper pages ------------------------------------------------------------------------


def test_paper_pages(client: TestClient) -> None:
    page = assert_html(client.get("/arxiv/2603.00001v2,hep-th/9901001,2501.99999"))
    assert "Sparse attention for long documents" in page
    assert "Schrödinger operators on strings" in page
    assert "not yet fetched: 2501.99999" in page
    assert 'href="https://arxiv.org/pdf/2603.00001"' in page
    assert 'href="https://arxiv.org/abs/hep-th/9901001"' in page
    assert 'href="/arxiv/2603.00001/bibtex"' in page
    # Subjects with names; the long author list folds.
    assert "Computation and Language (cs.CL)" in page
    assert '<details class="more-authors"><summary>and 7 more</summary>' in page
    # A linked venue's TL;DR fills the slot; elsewhere the empty slot is hidden.
    assert "<strong>TL;DR:</strong> Sparse &lt;attention&gt; works." in page
    assert '<p class="tldr" hidden></p>' in page
    # Where it was announced, linked to those day lists.
    assert '<a href="/arxiv/cs.LG?date=2026-03-03">cs.LG on 2026-03-03</a>' in page
    # Comments: the URL is a link (escaped), the trailing period is not part of it.
    assert '<a href="https://github.com/example/sparse?x=1&amp;y=2" rel="noopener">' in page


def test_math_rendered_and_everything_else_escaped(client: TestClient) -> None:
    page = assert_html(client.get("/arxiv/2603.00001"))
    assert "<math" in page and "<msup>" in page and "<mi>α</mi>" in page
    evil = assert_html(client.get("/arxiv/2603.00002"))
    assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in evil
    assert "&lt;img src=x onerror" in evil
    assert "<img" not in evil
    assert "Mallory &lt;b&gt;Evil&lt;/b&gt;" in evil
    assert 'href="javascript' not in evil and "<a href=x>" not in evil
    # Math in the title still renders, inside the escaped title.
    assert "<math" in evil.split('class="title"')[1].split("</h3>")[0]


def test_unsafe_tex_falls_back_to_source() -> None:
    from app.web.markup import rich

    out = str(rich(r"a $\text{<script>x</script>}$ b $\href{javascript:x}{y}$"))
    assert "<script" not in out and "javascript" not in out
    assert r"$\text{&lt;script&gt;x&lt;/script&gt;}$" in out


def test_bibtex(client: TestClient) -> None:
    r = client.get("/arxiv/2603.00001/bibtex")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith("@misc{number02026sparse,")
    assert "eprint = {2603.00001}" in r.text
    assert "author = {Author Number0 and Author Number1" in r.text
    assert "year = {2026}" in r.text
    assert client.get("/arxiv/2501.99999/bibtex").status_code == 404
    assert client.get("/arxiv/nope/bibtex").status_code == 400


# --- search -----------------------------------------------------------------------------


def test_search_page_highlights_safely(client: TestClient) -> None:
    page = assert_html(client.get("/search", params={"q": "attention"}))
    assert "2 matches" in page
    assert "<mark>attention</mark>" in page
    assert "&lt;script&gt;" in page
    assert 'href="/search/feed?q=attention"' in page
    narrowed = assert_html(
        client.get("/search", params={"q": "attention", "category": "cs.LG-cs.CY"})
    )
    assert "1 matches" in narrowed and "Sparse <mark>attention</mark>" in narrowed
    by_date = assert_html(
        client.get(
            "/search",
            params={"q": "attention", "from": "2026-01-01", "to": "2026-12-31", "sort": "date"},
        )
    )
    assert "matches" in by_date
    assert "Search" in assert_html(client.get("/search"))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "x", "page": "0"}, "page must be"),
        ({"q": "x", "page": "abc"}, "page must be"),
        ({"q": "x", "from": "2026-13-01"}, "is not a date"),
        ({"q": "x", "sort": "best"}, "sort must be"),
        ({"q": "x", "category": "cs.XX"}, "unknown category"),
    ],
)
def test_search_page_errors(client: TestClient, params: dict[str, str], message: str) -> None:
    assert message in assert_html(client.get("/search", params=params), 400)


def test_search_odd_queries_never_fail(client: TestClient) -> None:
    for q in ['"', "-", "OR OR", "ti:", "<script>"]:
        assert_html(client.get("/search", params={"q": q}))
    # A NUL is refused before any query runs (PostgreSQL text cannot hold one).
    assert "NUL" in assert_html(client.get("/search", params={"q": "\x00"}), 400)


# --- venues and the rest ----------------------------------------------------------------


def test_venue_pages(client: TestClient) -> None:
    index = assert_html(client.get("/venue"))
    assert 'href="/venue/iclr2018"' in index
    page = assert_html(client.get("/venue/iclr2018"))
    assert "Sparse &lt;attention&gt; works." in page
    assert "&lt;i&gt;Unlinked&lt;/i&gt; venue paper" in page
    assert 'href="/arxiv/2603.00001"' in page  # linked by title
    assert 'href="/venue/iclr2018/feed"' in page
    assert 'href="https://openreview.net/forum?id=abc"' in page
    assert "javascript:" not in page
    assert "No venue named" in assert_html(client.get("/venue/nope"), 404)
    assert_html(client.get("/venue/iclr2018", params={"page": "x"}), 400)


def test_stylesheet_and_index(client: TestClient) -> None:
    css = client.get("/static/papershelf.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "prefers-color-scheme: dark" in css.text
    assert client.get("/").status_code == 200


# --- a real day ---------------------------------------------------------------------------

REAL_DAY = "2025-09-17"


def test_real_day(
    shared_data: Path, tmp_path: Path, site_settings: Callable[..., Settings]
) -> None:
    """One real listing day (~200 cs papers) imported from the shared sample."""
    source = shared_data / "arxiv" / "papers_cs_2025-08-05_2026-07-01.jsonl.gz"
    lines = []
    with gzip.open(source) as fh:
        for line in fh:
            day = json.loads(line)["listing_date"]
            if day == REAL_DAY:
                lines.append(line)
            elif day > REAL_DAY and lines:
                break  # the file is in listing order
    assert 150 <= len(lines) <= 250
    sample = tmp_path / "day.jsonl"
    sample.write_bytes(b"".join(lines))
    records = [json.loads(line) for line in lines]
    expected = {r["id"] for r in records if "cs.CL" in r["categories"]}

    gen = make_client(site_settings)
    client = next(gen)
    try:
        from app.importer import import_file

        report = import_file(client.app.state.engine, sample)  # type: ignore[attr-defined]
        assert report.failed is None and report.papers == len(lines)
        page = assert_html(client.get("/arxiv/cs.CL", params={"date": REAL_DAY}))
        shown = set(re.findall(r'<article class="paper" id="([^"]+)"', page))
        assert shown == expected
        new = sum(1 for r in records if r["categories"][0] == "cs.CL")
        assert f"{len(expected)} papers, {new} new" in page
        assert "<math" in assert_html(client.get("/arxiv/cs.CL+cs.CV+cs.AI"))
    finally:
        gen.close()


# --- reader tools (static/papershelf.js) -------------------------------------------------


def test_reader_tools_script_and_hooks(client: TestClient) -> None:
    js = client.get("/static/papershelf.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert "papershelf.stars" in js.text and "import=" in js.text
    page = assert_html(client.get("/arxiv/cs.CL+cs.LG"))
    assert SCRIPT_TAG in page
    assert 'href="/starred"' in page
    # The cards carry what the script needs: the id, the PDF and abs links, focusability.
    assert re.search(
        r'<article class="paper" id="2603.00001" data-id="2603.00001" '
        r'data-pdf="https://arxiv.org/pdf/2603.00001[^"]*" '
        r'data-abs="https://arxiv.org/abs/2603.00001" tabindex="-1">',
        page,
    )
    assert "data-actions" in page


def test_starred_page_is_a_shell(client: TestClient) -> None:
    page = assert_html(client.get("/starred"))
    assert "<noscript>" in page and "needs JavaScript" in page
    assert "data-starred " in page and "data-starred-import" in page


def test_stylesheet_honours_theme_attribute(client: TestClient) -> None:
    css = client.get("/static/papershelf.css").text
    assert "prefers-color-scheme: dark" in css
    assert ':root[data-theme="dark"]' in css and ':root:not([data-theme="light"])' in css


def test_listing_etag_304_and_invalidation(client: TestClient) -> None:
    first = client.get("/arxiv/cs.CL+cs.LG")
    etag = first.headers["etag"]
    assert first.headers["cache-control"].startswith("public")
    again = client.get("/arxiv/cs.CL+cs.LG", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    cached = client.get("/arxiv/cs.CL+cs.LG")
    assert cached.text == first.text and cached.headers["etag"] == etag
    # A paper on that day gets a new version: the page's validator changes.
    engine = client.app.state.engine  # type: ignore[attr-defined]
    rec = next(r for r in seed_records() if r.arxiv_id == "2603.00001")
    rec.version = (rec.version or 1) + 5
    rec.title = "Sparse attention, revised"
    with engine.begin() as conn:
        store.upsert_papers(conn, [rec])
    # What VERSION_TTL (2 s) would do on its own:
    client.app.state.page_cache.forget_versions()  # type: ignore[attr-defined]
    changed = client.get("/arxiv/cs.CL+cs.LG", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert "Sparse attention, revised" in changed.text
    # Popularity order follows every click, so it is never cached.
    assert "etag" not in client.get("/arxiv/cs.CL+cs.LG", params={"sort": "popularity"}).headers


def test_listing_shows_a_tldr_written_after_it_was_cached(client: TestClient) -> None:
    """The ML pool writes TL;DRs after a day is stored and first read: the cached page and
    its validator must not hide them."""
    from app.artifacts import summaries

    first = client.get("/arxiv/cs.CL+cs.LG")
    etag = first.headers["etag"]
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        summaries.upsert(
            conn,
            [summaries.Written("2603.00002", None, "test-model", "A freshly written summary.")],
        )
    client.app.state.page_cache.forget_versions()  # type: ignore[attr-defined]
    later = client.get("/arxiv/cs.CL+cs.LG", headers={"If-None-Match": etag})
    assert later.status_code == 200 and later.headers["etag"] != etag
    card = later.text[later.text.index('id="2603.00002"') :]
    assert "A freshly written summary" in card[:4000], card[:3000]


def test_api_day_listing_for_an_expression(client: TestClient) -> None:
    r = client.get("/api/v1/listings/cs.CL+cs.LG")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["expression"] == "cs.CL+cs.LG" and body["day"] == "2026-03-03"
    assert body["summary"] == "2 papers, 2 new" and body["previous_day"] == "2026-03-02"
    ids = [p["arxiv_id"] for s in body["sections"] for p in s["papers"]]
    assert len(ids) == len(set(ids)) == 2
    again = client.get("/api/v1/listings/cs.CL+cs.LG", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    assert client.get("/api/v1/listings/cs.NOPE").json()["error"]["code"] == "bad_request"
    assert client.get("/api/v1/listings/cs.CL", params={"date": "2026-13-01"}).status_code == 422
    assert client.get("/api/v1/listings/cs.CL", params={"date": "2020-01-01"}).status_code == 404


def test_paper_page_etag_304(client: TestClient) -> None:
    first = client.get("/arxiv/2603.00001")
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "public, max-age=300"
    again = client.get("/arxiv/2603.00001", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""


def test_paper_page_is_served_from_the_cache_until_its_data_changes(client: TestClient) -> None:
    from app.artifacts import summaries

    url = "/arxiv/2603.00001,2603.00004"
    first = client.get(url, headers={"Accept-Encoding": "identity"})
    assert first.status_code == 200
    cache = client.app.state.paper_pages  # type: ignore[attr-defined]
    assert cache.get(first.headers["etag"]) == first.content
    again = client.get(url, headers={"Accept-Encoding": "identity"})
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    # Every change the page shows makes a new version at once (no TTL: one query a request).
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        summaries.upsert(conn, [summaries.Written("2603.00004", None, "m", "A new summary.")])
    tldr = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert tldr.status_code == 200 and "A new summary." in tldr.text
    rec = next(r for r in seed_records() if r.arxiv_id == "2603.00004")
    rec.announcements.append(Announcement("cs.LG", D2, AnnounceKind.CROSS, 9))
    with engine.begin() as conn:
        store.upsert_papers(conn, [rec])
    listed = client.get(url, headers={"If-None-Match": tldr.headers["etag"]})
    assert listed.status_code == 200 and 'href="/arxiv/cs.LG?date=2026-03-03"' in listed.text
    rec.title = "An older day, retitled"
    rec.version = 4
    with engine.begin() as conn:
        store.upsert_papers(conn, [rec])
    retitled = client.get(url)
    assert "An older day, retitled" in retitled.text
    assert len({first.headers["etag"], tldr.headers["etag"], listed.headers["etag"]}) == 3
    # Not every id stored: never cached, and the page says what is missing.
    partial = client.get("/arxiv/2603.00001,2603.00777")
    assert "2603.00777" in partial.text and "etag" not in partial.headers
