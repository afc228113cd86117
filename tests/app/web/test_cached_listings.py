"""The day listings' fast path (`app.web.pages.listing.CachedListings`): a cached listing and
its 304 are answered before routing, without the database, with everything the rest of the
stack adds; anything else still reaches the route; and what a fetch (or another web process)
writes shows once the page cache's versions have aged past their TTL."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import Engine, event

from app.db import store
from app.db.engine import make_engine
from app.ingest.records import AnnounceKind, Announcement, PaperRecord
from app.listing import parse_expression
from app.settings import Settings
from app.web.pages.cache import VERSION_TTL, PageCache
from tests.app.web.test_pages import D2, seed_records
from tests.fakes.clock import Clock

URL = "/arxiv/cs.CL+cs.LG"
D3 = date(2026, 3, 4)
ROUTE = "/arxiv/{rest:path}"


def seed(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        store.upsert_papers(conn, seed_records())
    engine.dispose()


def new_day_paper() -> PaperRecord:
    """What a fetch writes the next day: a new cs.CL paper."""
    return PaperRecord(
        arxiv_id="2603.00009",
        title="Announced the day after",
        abstract="Fresh.",
        authors=["Ada Lovelace"],
        primary_category="cs.CL",
        categories=["cs.CL"],
        first_submitted_at=datetime(2026, 3, 3, tzinfo=UTC),
        announcements=[Announcement("cs.CL", D3, AnnounceKind.NEW, 0)],
    )


def write(url: str, records: list[PaperRecord]) -> None:
    """A writer outside the apps (the fetch pool, another process)."""
    engine = make_engine(url)
    with engine.begin() as conn:
        store.upsert_papers(conn, records)
    engine.dispose()


@contextmanager
def serving(clock: Clock) -> Iterator[TestClient]:
    """A fresh app (its own lifespan: engine and page cache), on the configured store."""
    from app.main import create_app

    with TestClient(create_app()) as c:
        c.app.state.page_cache.clock = clock  # type: ignore[attr-defined]
        yield c


def count_events(app: FastAPI, name: str) -> list[int]:
    """A one-item list counting the app's engine's events `name` from now on."""
    seen = [0]
    engine: Engine = app.state.engine

    @event.listens_for(engine, name)
    def _seen(*_args: object) -> None:
        seen[0] += 1

    return seen


def count_connections(app: FastAPI) -> list[int]:
    """The connections the app's engine opens from now on."""
    return count_events(app, "engine_connect")


@pytest.fixture
def db_url(site_settings: Callable[..., Settings]) -> str:
    url = site_settings().database_url_resolved
    seed(url)
    return url


@pytest.fixture
def client(db_url: str, clock: Clock) -> Iterator[TestClient]:
    with serving(clock) as c:
        yield c


def requests_counted(status: int, route: str = ROUTE) -> float:
    labels = {"route": route, "method": "GET", "status": str(status)}
    return REGISTRY.get_sample_value("papershelf_http_requests_total", labels) or 0.0


# --- answered before routing -------------------------------------------------------------


def test_cached_listing_and_its_304_need_no_database(client: TestClient) -> None:
    first = client.get(URL)  # the route renders and caches it
    assert first.status_code == 200
    etag = first.headers["etag"].removeprefix("W/")  # the test client asks for gzip
    opened = count_connections(client.app)  # type: ignore[arg-type]
    again = client.get(URL)
    assert again.status_code == 200 and again.text == first.text
    assert again.headers["etag"] == first.headers["etag"]
    # The same page asked for by its date has the same validator.
    dated = client.get(URL, params={"date": str(D2)})
    assert dated.status_code == 200 and dated.headers["etag"] == first.headers["etag"]
    for tag in (etag, "W/" + etag, f'"other", {etag}', "*"):
        revalidated = client.get(URL, headers={"If-None-Match": tag})
        assert revalidated.status_code == 304 and revalidated.content == b"", tag
        assert revalidated.headers["etag"] == etag
    head = client.head(URL, headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(first.content))
    assert opened == [0]
    # A tag that does not match gets the page.
    other = client.get(URL, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.text == first.text


def test_fast_answers_carry_what_the_stack_adds(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    routed = client.get(URL, headers={"Accept-Encoding": "identity"})
    before = (requests_counted(200), requests_counted(304))
    opened = count_connections(client.app)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="app.web.middleware"):
        fast = client.get(URL, headers={"Accept-Encoding": "identity", "X-Request-ID": "fast-1"})
        not_modified = client.get(URL, headers={"If-None-Match": routed.headers["etag"]})
    assert opened == [0]
    # Byte for byte the route's answer, headers included (the request id aside).
    assert fast.content == routed.content
    assert fast.headers["x-request-id"] == "fast-1"
    assert {k: v for k, v in fast.headers.items() if k != "x-request-id"} == {
        k: v for k, v in routed.headers.items() if k != "x-request-id"
    }
    for answer in (fast, not_modified):
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cache-control"] == "public, max-age=60"
    assert fast.headers["vary"] == "Accept-Encoding"
    assert fast.headers["content-type"] == "text/html; charset=utf-8"
    assert len(not_modified.headers["x-request-id"]) == 32
    # One access line each, under the dispatcher's route, and counted there.
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "app.web.middleware"]
    assert [(e["route"], e["status"], e["path"]) for e in lines] == [
        (ROUTE, 200, URL),
        (ROUTE, 304, URL),
    ]
    assert lines[0]["request_id"] == "fast-1"
    assert (requests_counted(200), requests_counted(304)) == (before[0] + 1, before[1] + 1)


def test_fast_answers_are_compressed_for_clients_that_ask(client: TestClient) -> None:
    plain = client.get(URL, headers={"Accept-Encoding": "identity"})
    opened = count_connections(client.app)  # type: ignore[arg-type]
    with client.stream("GET", URL, headers={"Accept-Encoding": "gzip"}) as r:
        wire = b"".join(r.iter_raw())
        headers = r.headers
    assert opened == [0]
    assert headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
    assert headers["etag"] == "W/" + plain.headers["etag"]
    assert gzip.decompress(wire) == plain.content
    weak = client.get(URL, headers={"Accept-Encoding": "gzip", "If-None-Match": headers["etag"]})
    assert weak.status_code == 304 and "content-encoding" not in weak.headers


def test_forged_host_is_refused_even_for_a_cached_page(client: TestClient) -> None:
    assert client.get(URL).status_code == 200
    forged = client.get(URL, headers={"Host": "evil.example"})
    assert forged.status_code == 400
    assert forged.json()["error"]["code"] == "bad_host"


# --- everything else still reaches the route ---------------------------------------------


def test_what_the_cache_cannot_answer_reaches_the_route(client: TestClient) -> None:
    assert client.get(URL).status_code == 200  # versions and the page are cached now
    bad_date = client.get(URL, params={"date": "2026-02-30"})
    assert bad_date.status_code == 400 and "Bad date" in bad_date.text
    assert "text/html" in bad_date.headers["content-type"]
    bad_sort = client.get(URL, params={"sort": "loudest"})
    assert bad_sort.status_code == 400 and "Unknown sort" in bad_sort.text
    popular = client.get(URL, params={"sort": "popularity"})
    assert popular.status_code == 200 and "etag" not in popular.headers
    personal = client.get(URL, params={"sort": "foryou", "starred": "2603.00001"})
    assert personal.headers["cache-control"] == "private, no-store"
    unknown = client.get("/arxiv/cs.NOPE")
    assert unknown.status_code == 400 and "Not a paper id or category" in unknown.text
    no_day = client.get(URL, params={"date": "2020-01-01"})
    assert no_day.status_code == 404 and "No list that day" in no_day.text
    paper = client.get("/arxiv/2603.00001")
    assert paper.status_code == 200 and "Sparse attention for long documents" in paper.text
    feed = client.get("/arxiv/cs.CL/feed")
    assert feed.status_code == 200 and "xml" in feed.headers["content-type"]
    # Keywords make another page (and another validator) than the plain one.
    keyed = client.get(URL, params={"kw": "attention"})
    assert keyed.status_code == 200 and keyed.headers["etag"] != client.get(URL).headers["etag"]
    assert client.get(URL, params={"kw": "attention"}).text == keyed.text


# --- freshness within the version TTL ----------------------------------------------------


def test_a_new_day_shows_once_the_versions_age(
    client: TestClient, clock: Clock, db_url: str
) -> None:
    first = client.get(URL)
    assert "Tue, 03 Mar 2026" in first.text
    write(db_url, [new_day_paper()])
    # Within the TTL the cached answer stands (no query was made to notice the change).
    assert client.get(URL).headers["etag"] == first.headers["etag"]
    clock.advance(VERSION_TTL)
    later = client.get(URL)
    assert later.status_code == 200 and later.headers["etag"] != first.headers["etag"]
    assert "Wed, 04 Mar 2026" in later.text and "Announced the day after" in later.text
    # The old validator no longer matches: the reader gets the new page, not a 304.
    stale = client.get(URL, headers={"If-None-Match": first.headers["etag"]})
    assert stale.status_code == 200 and "Announced the day after" in stale.text
    # The day before is still there, by its date, and links to the new one.
    before = client.get(URL, params={"date": str(D2)})
    assert before.status_code == 200 and f'href="{URL}?date={D3}' in before.text


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_web_processes_on_one_database_each_see_a_change_within_the_ttl(
    database: str,
    site_settings: Callable[..., Settings],
    request: pytest.FixtureRequest,
) -> None:
    """Each web process keeps its own page cache: a change written elsewhere reaches
    every one of them once its versions are older than the TTL."""
    env = {"DATABASE_URL": request.getfixturevalue("pg_url")} if database == "postgresql" else {}
    url = site_settings(**env).database_url_resolved
    seed(url)
    clocks = Clock(), Clock()
    with serving(clocks[0]) as a, serving(clocks[1]) as b:
        assert a.app is not b.app
        firsts = [c.get(URL) for c in (a, b)]
        assert firsts[0].headers["etag"] == firsts[1].headers["etag"]
        revised = next(r for r in seed_records() if r.arxiv_id == "2603.00001")
        revised.version = 7
        revised.title = "Sparse attention, revised elsewhere"
        write(url, [revised])
        # b's versions age first: b shows the change, a still answers from its cache.
        clocks[1].advance(VERSION_TTL)
        assert "revised elsewhere" in b.get(URL).text
        assert a.get(URL).headers["etag"] == firsts[0].headers["etag"]
        clocks[0].advance(VERSION_TTL)
        pages = [c.get(URL) for c in (a, b)]
        assert all("revised elsewhere" in p.text for p in pages)
        assert pages[0].headers["etag"] == pages[1].headers["etag"] != firsts[0].headers["etag"]
        # A new day, written by a fetch, reaches both the same way.
        write(url, [new_day_paper()])
        for c, clk in zip((a, b), clocks, strict=True):
            clk.advance(VERSION_TTL)
            assert "Wed, 04 Mar 2026" in c.get(URL).text


# --- the page cache ------------------------------------------------------------------------


def test_page_cache_remembers_versions_and_latest_days_for_the_ttl(
    db_url: str,
) -> None:
    clock = Clock()
    cache = PageCache(version_ttl=2.0, clock=clock)
    expr = parse_expression("cs.CL")
    canonical = expr.canonical()
    engine = make_engine(db_url)
    try:
        assert cache.fresh_latest_day(canonical) == (False, None)
        assert cache.fresh_version(canonical, D2) is None
        with engine.connect() as conn:
            assert cache.latest_day(conn, expr) == D2
            version = cache.version(conn, expr, D2)
        assert cache.fresh_latest_day(canonical) == (True, D2)
        assert cache.fresh_version(canonical, D2) == version
        write(db_url, [new_day_paper()])
        clock.advance(1.9)
        with engine.connect() as conn:
            assert cache.latest_day(conn, expr) == D2  # remembered: no query
        clock.advance(0.1)
        assert cache.fresh_latest_day(canonical) == (False, None)
        assert cache.fresh_version(canonical, D2) is None
        with engine.connect() as conn:
            assert cache.latest_day(conn, expr) == D3
            assert cache.version(conn, expr, D2) != version  # the newest day is part of it
        cache.forget_versions()
        assert cache.fresh_latest_day(canonical) == (False, None)
    finally:
        engine.dispose()


# --- the JSON API's day listing -------------------------------------------------------------

API_URL = "/api/v1/listings/cs.CL+cs.LG"


def count_statements(app: FastAPI) -> list[int]:
    """The SQL statements the app's engine runs from now on."""
    return count_events(app, "before_cursor_execute")


def test_api_listing_is_kept_by_the_listing_version(
    client: TestClient, clock: Clock, db_url: str
) -> None:
    first = client.get(API_URL)
    assert first.status_code == 200
    etag = first.headers["etag"].removeprefix("W/")
    assert first.headers["cache-control"] == "public, max-age=60"
    ran = count_statements(client.app)  # type: ignore[arg-type]
    again = client.get(API_URL)
    dated = client.get(API_URL, params={"date": str(D2)})
    revalidated = client.get(API_URL, headers={"If-None-Match": etag})
    assert ran == [0]  # the day, its version and the body were all kept
    assert again.json() == first.json() and again.headers["etag"] == first.headers["etag"]
    assert dated.headers["etag"] == first.headers["etag"]
    assert revalidated.status_code == 304 and revalidated.content == b""
    # Filters make other answers, each kept under its own validator.
    kinds = client.get(API_URL, params={"kind": "new"})
    coded = client.get(API_URL, params={"has_code": "true"})
    tags = {first.headers["etag"], kinds.headers["etag"], coded.headers["etag"]}
    assert len(tags) == 3
    assert {p["kind"] for s in kinds.json()["sections"] for p in s["papers"]} == {"new"}
    # A paper revised elsewhere shows once the version has aged past the TTL.
    revised = next(r for r in seed_records() if r.arxiv_id == "2603.00001")
    revised.version = 7
    revised.title = "Sparse attention, revised elsewhere"
    write(db_url, [revised])
    assert client.get(API_URL).headers["etag"] == first.headers["etag"]
    clock.advance(VERSION_TTL)
    later = client.get(API_URL)
    titles = [p["title"] for s in later.json()["sections"] for p in s["papers"]]
    assert "Sparse attention, revised elsewhere" in titles
    stale = client.get(API_URL, headers={"If-None-Match": etag})
    assert stale.status_code == 200


def test_api_listing_by_popularity_and_bad_input_are_not_kept(client: TestClient) -> None:
    assert client.get(API_URL).status_code == 200
    popular = client.get(API_URL, params={"sort": "popularity"})
    assert popular.status_code == 200
    ran = count_statements(client.app)  # type: ignore[arg-type]
    assert client.get(API_URL, params={"sort": "popularity"}).status_code == 200
    assert ran[0] > 0  # clicks order it: built every time
    assert client.get(API_URL, params={"kind": "loud"}).status_code == 400
    missing = client.get(API_URL, params={"date": "2020-01-01"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
