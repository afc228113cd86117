"""Search pages kept rendered (`app.web.pages.search`): a repeated query is answered from the
search-page cache by its ETag, for `version_ttl` seconds without the database at all
(`CachedSearches`), and what a fetch or an edit writes shows once that time has passed."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from app.web.pages.cache import VERSION_TTL
from tests.app.web.test_cached_listings import (
    count_connections,
    new_day_paper,
    requests_counted,
    seed,
    write,
)
from tests.app.web.test_pages import seed_records
from tests.fakes.clock import Clock

URL = "/search?q=attention"
ROUTE = "/search"


@contextmanager
def serving(clock: Clock) -> Iterator[TestClient]:
    """A fresh app whose search-page cache ages by `clock`."""
    from app.main import create_app

    with TestClient(create_app()) as c:
        c.app.state.search_pages.clock = clock  # type: ignore[attr-defined]
        yield c


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, site_settings: Callable[..., Settings]) -> Iterator[str]:
    env = {"DATABASE_URL": request.getfixturevalue("pg_url")} if request.param != "sqlite" else {}
    url = site_settings(**env).database_url_resolved
    seed(url)
    yield url


@pytest.fixture
def client(db_url: str, clock: Clock) -> Iterator[TestClient]:
    with serving(clock) as c:
        yield c


def test_a_repeated_search_needs_no_database_within_the_ttl(client: TestClient) -> None:
    first = client.get(URL, headers={"Accept-Encoding": "identity"})
    assert first.status_code == 200 and 'id="2603.00001"' in first.text
    etag = first.headers["etag"]
    assert etag.startswith('"') and first.headers["cache-control"] == "public, max-age=60"
    opened = count_connections(client.app)  # type: ignore[arg-type]
    again = client.get(URL, headers={"Accept-Encoding": "identity"})
    assert again.content == first.content
    assert {k: v for k, v in again.headers.items() if k != "x-request-id"} == {
        k: v for k, v in first.headers.items() if k != "x-request-id"
    }
    for tag in (etag, "W/" + etag, f'"other", {etag}', "*"):
        revalidated = client.get(URL, headers={"If-None-Match": tag})
        assert revalidated.status_code == 304 and revalidated.content == b"", tag
    gzipped = client.get(URL)
    assert gzipped.headers["content-encoding"] == "gzip" and gzipped.text == first.text
    assert opened == [0]
    # Other words, another page, or a query the route refuses: the route answers.
    other = client.get("/search", params={"q": "agents"})
    assert other.status_code == 200 and 'id="2603.00003"' in other.text
    assert other.headers["etag"] != etag
    refused = client.get("/search", params={"q": "attention", "page": "0"})
    assert refused.status_code == 400 and "etag" not in refused.headers
    assert opened[0] >= 2


def test_after_the_ttl_the_route_checks_and_reuses_an_unchanged_page(
    client: TestClient, clock: Clock
) -> None:
    first = client.get(URL)
    clock.advance(VERSION_TTL)
    opened = count_connections(client.app)  # type: ignore[arg-type]
    again = client.get(URL)
    assert opened == [1]  # the route ran the search and the cards' version again
    assert again.headers["etag"] == first.headers["etag"] and again.text == first.text
    # A client holding the page gets a 304 from the route as well.
    clock.advance(VERSION_TTL)
    revalidated = client.get(URL, headers={"If-None-Match": first.headers["etag"]})
    assert revalidated.status_code == 304


def test_an_edited_or_new_paper_shows_once_the_ttl_has_passed(
    client: TestClient, clock: Clock, db_url: str
) -> None:
    first = client.get(URL)
    revised = next(r for r in seed_records() if r.arxiv_id == "2603.00001")
    revised.version = 7
    revised.title = "Sparse attention, revised elsewhere"
    write(db_url, [revised])
    assert client.get(URL).headers["etag"] == first.headers["etag"]  # within the TTL
    clock.advance(VERSION_TTL)
    later = client.get(URL)
    assert "revised elsewhere" in later.text and later.headers["etag"] != first.headers["etag"]
    stale = client.get(URL, headers={"If-None-Match": first.headers["etag"]})
    assert stale.status_code == 200 and "revised elsewhere" in stale.text
    # A new paper that matches moves the results themselves.
    paper = new_day_paper()
    paper.title = "Attention announced the day after"
    write(db_url, [paper])
    clock.advance(VERSION_TTL)
    newest = client.get(URL)
    assert 'id="2603.00009"' in newest.text
    assert newest.headers["etag"] != later.headers["etag"]


def test_cached_answers_are_rate_limited_logged_and_counted(
    site_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    url = site_settings(RATE_LIMIT_PER_MINUTE="60", RATE_LIMIT_BURST="3").database_url_resolved
    seed(url)
    with serving(Clock()) as c:
        before = requests_counted(200, ROUTE)
        with caplog.at_level(logging.INFO, logger="app.web.middleware"):
            statuses = [
                c.get(URL, headers={"X-Request-ID": f"s-{i}"}).status_code for i in range(5)
            ]
        # The flood is refused like any other search, cached answer or not.
        assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
        lines = [
            json.loads(r.getMessage()) for r in caplog.records if r.name == "app.web.middleware"
        ]
        assert [(e["route"], e["status"]) for e in lines[:3]] == [(ROUTE, 200)] * 3
        assert [e["request_id"] for e in lines[:3]] == ["s-0", "s-1", "s-2"]
        assert requests_counted(200, ROUTE) == before + 3
