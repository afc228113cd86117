"""Protocol answers on every route, pages and API alike, on both databases: bounded
integers and NUL characters are 4xx in the route's error shape, HEAD works wherever GET
does, 405s say what is allowed, dates are YYYY-MM-DD only, over-long URLs get the app's own
error, the schema carries the id and token patterns, and `If-None-Match: *` is a 304."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from hypothesis import given, settings
from hypothesis import strategies as st

from app.ingest.records import VenuePaperRecord
from app.settings import Settings
from app.web.api.params import PAGE_TOKEN_PATTERN, PAPER_ID_PATTERN, paper_id
from app.web.protocol import MAX_URL_BYTES

HUGE = "9" * 30


@pytest.fixture(params=["sqlite", "postgresql"])
def client(
    request: pytest.FixtureRequest, site_settings: Callable[..., Settings]
) -> Iterator[TestClient]:
    """The whole site on each database: the pages' seed papers and a venue, `acl2022`, of
    three papers."""
    from app.db import store
    from app.db.engine import make_engine
    from app.main import create_app
    from tests.app.web.test_pages import seed_records

    env = {"RATE_LIMIT_PER_MINUTE": "0"}
    if request.param == "postgresql":
        env["DATABASE_URL"] = request.getfixturevalue("pg_url")
    settings = site_settings(**env)
    engine = make_engine(settings.database_url_resolved)
    with engine.begin() as conn:
        store.upsert_papers(conn, seed_records())
        store.upsert_venue(
            conn,
            "acl2022",
            [VenuePaperRecord("acl2022", f"p{i}", f"Venue paper {i}", ["Ann"]) for i in range(3)],
        )
        store.link_venues(conn)
    engine.dispose()
    with TestClient(create_app()) as c:
        yield c


def assert_error_shape(r: Response, path: str) -> None:
    """A 4xx in the route's shape: the API's JSON error, or the HTML error page."""
    assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:300])
    if path.startswith("/api/"):
        body = r.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    else:
        assert r.headers["content-type"].startswith("text/html"), r.headers
        assert f"HTTP {r.status_code}" in r.text


# --- item: bounded integers, NUL characters ----------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"/venue/acl2022?page={HUGE}",
        "/venue/acl2022?page=0",
        "/venue/acl2022?page=-3",
        f"/search?q=attention&page={HUGE}",
        f"/arxiv/2603.00001?wait={HUGE}",
        f"/api/v1/papers?limit={HUGE}",
        f"/api/v1/search?q=attention&limit={HUGE}",
        f"/api/v1/venues/acl2022?limit={HUGE}",
        f"/api/v1/papers/2603.00001/related?limit={HUGE}",
    ],
)
def test_out_of_range_integers_are_4xx(client: TestClient, url: str) -> None:
    r = client.get(url)
    if url.startswith("/arxiv/"):  # `wait` is a hint: out of range means no wait
        assert r.status_code == 200, r.text[:300]
        return
    assert_error_shape(r, url)


def test_venue_pages_within_bounds_still_work(client: TestClient) -> None:
    assert client.get("/venue/acl2022?page=1").status_code == 200
    assert client.get("/venue/acl2022?page=10000").status_code == 200  # empty, but a page


@pytest.mark.parametrize(
    "url",
    [
        "/venue/a%00b",
        "/venue/acl2022?page=1%00",
        "/arxiv/cs.CL%00",
        "/arxiv/cs.CL?date=2026-03-03%00",
        "/arxiv/2603.00001%00",
        "/search?q=attention%00",
        "/search?q=x&category=cs.CL%00",
        "/venue/a%00b/feed",
        "/api/v1/papers/2603.0%001",
        "/api/v1/papers?category=cs.CL%00",
        "/api/v1/search?q=a%00b",
        "/api/v1/venues/a%00b",
        "/api/v1/listings/cs.CL%00",
        "/api/v1/papers/2603.00001/faq?lang=en%00",
        "/api/v1/papers?x%00=1",
    ],
)
def test_nul_in_path_or_query_is_400(client: TestClient, url: str) -> None:
    r = client.get(url)
    assert r.status_code == 400, (url, r.text[:300])
    assert_error_shape(r, url)


# --- item: HEAD, Allow, dates, long URLs, the schema ---------------------------------------

HEAD_URLS = [
    "/",
    "/arxiv/cs.CL",
    "/arxiv/2603.00001",
    "/arxiv/cs.CL/feed",
    "/search?q=attention",
    "/venue",
    "/venue/acl2022",
    "/static/papershelf.css",
    "/openapi.json",
    "/api/v1/papers",
    "/api/v1/papers/2603.00001",
    "/api/v1/listings/cs.CL",
    "/api/v1/venues/acl2022",
    "/api/v1/stats",
    "/api/v1/papers/2603.00001/related",
    "/api/v1/papers/2699.99999",  # an error answers HEAD the same way
    "/venue/nope",
]
SAME_HEADERS = ("content-type", "content-length", "etag", "cache-control", "allow")


@pytest.mark.parametrize("url", HEAD_URLS)
def test_head_answers_as_get_without_a_body(client: TestClient, url: str) -> None:
    get = client.get(url)
    head = client.head(url)
    assert head.status_code == get.status_code != 405, (url, head.status_code)
    assert head.content == b""
    for name in SAME_HEADERS:
        assert head.headers.get(name) == get.headers.get(name), (url, name)


def test_405_names_the_allowed_methods(client: TestClient) -> None:
    r = client.post("/api/v1/papers")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert [m.strip() for m in r.headers["allow"].split(",")] == ["GET", "HEAD"]
    r = client.delete("/arxiv/2603.00001")
    assert r.status_code == 405 and "HEAD" in r.headers["allow"]
    r = client.get("/api/v1/admin/reindex")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/papers?to=0",
        "/api/v1/papers?from=1700000000",
        "/api/v1/papers?from=20260303",
        "/api/v1/papers?to=2026-03-03T00:00:00",
        "/api/v1/search?q=attention&from=0",
        "/api/v1/days?to=0",
        "/api/v1/listings/cs.CL?date=0",
        "/search?q=attention&to=0",
        "/search?q=attention&from=20260303",
        "/arxiv/cs.CL?date=20260303",
    ],
)
def test_dates_are_yyyy_mm_dd_only(client: TestClient, url: str) -> None:
    r = client.get(url)
    assert r.status_code == (422 if url.startswith("/api/") else 400), (url, r.text[:300])
    assert_error_shape(r, url)


def test_dates_in_the_documented_form_still_work(client: TestClient) -> None:
    r = client.get("/api/v1/papers", params={"from": "2026-03-03", "to": "2026-03-03"})
    assert r.status_code == 200 and r.json()["papers"]
    assert client.get("/api/v1/listings/cs.CL", params={"date": "2026-03-03"}).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/papers", "/search", "/arxiv/cs.CL"])
def test_a_very_long_url_gets_the_apps_own_error(client: TestClient, path: str) -> None:
    r = client.get(path, params={"q": "a" * MAX_URL_BYTES})
    assert r.status_code == 414
    assert_error_shape(r, path)
    # Just under the limit is an ordinary request.
    room = MAX_URL_BYTES - len(path) - len("q=")
    assert client.get(path, params={"q": "a" * room}).status_code < 500


def test_schema_documents_the_id_and_token_patterns(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    def param(path: str, method: str, name: str) -> dict:  # type: ignore[type-arg]
        found = [p for p in spec["paths"][path][method]["parameters"] if p["name"] == name]
        assert found, (path, name)
        return found[0]["schema"]  # type: ignore[no-any-return]

    for path in (
        "/api/v1/papers/{arxiv_id}",
        "/api/v1/papers/{arxiv_id}/related",
        "/api/v1/papers/{arxiv_id}/faq",
        "/api/v1/papers/{arxiv_id}/thumbnail.png",
    ):
        assert param(path, "get", "arxiv_id")["pattern"] == PAPER_ID_PATTERN, path
    for path in ("/api/v1/papers", "/api/v1/venues/{name}"):
        assert param(path, "get", "page_token")["pattern"] == PAGE_TOKEN_PATTERN, path
    for name in ("from", "to"):
        assert param("/api/v1/papers", "get", name)["anyOf"][0]["format"] == "date"
    # The documented patterns hold for what the server accepts and hands out ...
    ids = re.compile(PAPER_ID_PATTERN)
    for good in ("2603.00001", "2603.00001v2", "0704.0001", "hep-th/9901001", "math.GT/0309136"):
        assert ids.fullmatch(good), good
    for bad in ("2613.00001", "not-an-id", "2603.00001v0", "2603.0%001", ""):
        assert not ids.fullmatch(bad), bad
    token = client.get("/api/v1/papers", params={"limit": 1}).json()["next_page_token"]
    assert token and re.fullmatch(PAGE_TOKEN_PATTERN, token)
    # ... and what they rule out, the server refuses.
    assert client.get("/api/v1/papers/2613.00001").status_code == 400
    assert client.get("/api/v1/papers", params={"page_token": "v1.!!.??"}).status_code == 400


# --- item: If-None-Match: * --------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/arxiv/cs.CL", "/arxiv/2603.00001", "/api/v1/papers/2603.00001", "/api/v1/listings/cs.CL"],
)
def test_if_none_match_star_is_304_on_pages_and_api_alike(client: TestClient, url: str) -> None:
    first = client.get(url)
    assert first.status_code == 200 and first.headers.get("etag"), url
    again = client.get(url, headers={"If-None-Match": "*"})
    assert again.status_code == 304 and again.content == b"", url
    # The same validator (compared weakly: a compressed 200 carries the weak form).
    assert again.headers["etag"].removeprefix("W/") == first.headers["etag"].removeprefix("W/")
    # An ETag list that misses is a full answer.
    assert client.get(url, headers={"If-None-Match": '"nope", W/"other"'}).status_code == 200


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.from_regex(PAPER_ID_PATTERN, fullmatch=True))
def test_every_id_the_schema_allows_is_one_the_server_takes(text: str) -> None:
    paper_id(text)  # a 400 (HTTPException) for any the server refuses


def test_405_allow_names_every_route_of_the_path(client: TestClient) -> None:
    r = client.request("OPTIONS", "/api/v1/papers/2603.00001/faq")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, POST"
    r = client.get("/api/v1/papers/2603.00001/clicks")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


def test_search_api_refuses_what_its_schema_rules_out(client: TestClient) -> None:
    for params in (
        {"q": "attention", "category": "cs.NOPE"},
        {"q": "attention", "category": ""},
        {"q": "attention", "from": "2026-03-04", "to": "2026-03-03"},
    ):
        r = client.get("/api/v1/search", params=params)
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", params
    # An archive stands for its categories, as on /papers.
    r = client.get("/api/v1/search", params={"q": "attention", "category": "cs"})
    assert r.status_code == 200 and r.json()["hits"]
