"""The JSON API (listings, keyset paging, caching, clicks, admin) and the HTTP middleware
(security headers, CORS, request ids, metrics, rate limiting)."""

from __future__ import annotations

import base64
import itertools
import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.db import store
from app.db.engine import make_engine
from app.db.migrate import upgrade
from app.ingest.records import AnnounceKind, Announcement, PaperRecord, VenuePaperRecord
from app.settings import Settings, get_settings
from app.web import api, protocol
from app.web.http import encode_page_token, fingerprint
from app.web.middleware import install

FIRST_DAY = date(2025, 1, 6)
N_PAPERS = 300
_clients = itertools.count(1)


def paper(n: int, day: date, cats: list[str]) -> PaperRecord:
    return PaperRecord(
        arxiv_id=f"2501.{n:05d}",
        title=f"Paper number {n} on transformers",
        abstract=f"Abstract {n}: we study attention.",
        authors=[f"Author {n}", "Ada Lovelace"],
        primary_category=cats[0],
        categories=cats,
        version=1,
        first_submitted_at=datetime.combine(day, datetime.min.time(), UTC) - timedelta(days=3),
        announcements=[Announcement(c, day, AnnounceKind.NEW) for c in cats],
    )


def seed(url: str, n: int = N_PAPERS) -> None:
    """`n` papers over 10 announcement days (many ties on sort_date), three category mixes,
    and one venue whose first paper is linked to 2501.00001."""
    upgrade(url)
    engine = make_engine(url)
    mixes = [["cs.CL"], ["cs.LG", "stat.ML"], ["cs.CL", "cs.LG"]]
    with engine.begin() as conn:
        store.upsert_papers(
            conn,
            [paper(i, FIRST_DAY + timedelta(days=i % 10), mixes[i % 3]) for i in range(1, n + 1)],
        )
        store.upsert_venue(
            conn,
            "iclr2025",
            [
                VenuePaperRecord(
                    venue="iclr2025",
                    venue_paper_id=f"v{i}",
                    title="Paper number 1 on transformers" if i == 0 else f"Venue paper {i}",
                    authors=["Someone"],
                    status="accept",
                )
                for i in range(7)
            ],
        )
        store.link_venues(conn, "iclr2025")
    engine.dispose()


@pytest.fixture
def db_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A fresh, seeded SQLite store that the app's settings point at."""
    monkeypatch.setenv("PAPERSHELF_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PAPERSHELF_DATABASE_URL", raising=False)
    monkeypatch.delenv("PAPERSHELF_REDIS_URL", raising=False)
    monkeypatch.setenv("PAPERSHELF_ADMIN_TOKEN", "s3cret-token")
    get_settings.cache_clear()
    settings = get_settings()
    seed(settings.database_url_resolved)
    yield settings
    get_settings.cache_clear()


def make_app(settings: Settings, registry: CollectorRegistry | None = None) -> FastAPI:
    """The API router with app.main's lifespan and error handlers, and the middleware."""
    from app.main import _http_error, _validation_error, lifespan

    app = FastAPI(title="Papershelf test", lifespan=lifespan)
    app.include_router(api.router)
    # Starlette's own HTTPException (the router's 404/405) too, so they get the error shape.
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    install(app, settings, registry=registry or CollectorRegistry())
    protocol.install(app)
    return app


def _client(app: FastAPI) -> TestClient:
    # A distinct client address per test: rate-limit buckets never carry across tests.
    return TestClient(app, client=(f"10.0.{next(_clients) % 250}.{next(_clients) % 250}", 1))


@pytest.fixture
def app(db_env: Settings) -> FastAPI:
    """A new app as app.main builds it, with this test's settings (its own rate limits and
    caches)."""
    from app.main import create_app

    return create_app()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with _client(app) as c:
        yield c


def assert_error(r, status: int, code: str | None = None) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    if code is not None:
        assert body["error"]["code"] == code, body


# --- papers listing and keyset paging ----------------------------------------------------


def _walk(client: TestClient, params: dict[str, object]) -> list[dict]:  # type: ignore[type-arg]
    seen: list[dict] = []  # type: ignore[type-arg]
    token = None
    for _ in range(100):
        r = client.get(
            "/api/v1/papers", params={**params, **({"page_token": token} if token else {})}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        seen.extend(body["papers"])
        token = body["next_page_token"]
        if token is None:
            return seen
    raise AssertionError("paging did not end")


def test_keyset_paging_has_no_duplicates_or_gaps(client: TestClient) -> None:
    papers = _walk(client, {"limit": 17})
    ids = [p["arxiv_id"] for p in papers]
    assert len(ids) == N_PAPERS == len(set(ids))
    keys = [(p["sort_date"], p["arxiv_id"]) for p in papers]
    assert keys == sorted(keys, reverse=True)
    assert papers[0]["sort_date"] == (FIRST_DAY + timedelta(days=9)).isoformat()
    assert papers[0]["abs_url"] == f"https://arxiv.org/abs/{papers[0]['arxiv_id']}"
    # Exactly a page's worth: the last full page says there is no more.
    exact = client.get("/api/v1/papers", params={"limit": 200}).json()
    assert exact["next_page_token"] is not None
    last = client.get(
        "/api/v1/papers", params={"limit": 100, "page_token": exact["next_page_token"]}
    ).json()
    assert len(last["papers"]) == 100 and last["next_page_token"] is None


@pytest.mark.postgres
def test_keyset_paging_on_postgres(
    db_env: Settings, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAPERSHELF_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    settings = get_settings()
    seed(settings.database_url_resolved, n=120)
    with _client(make_app(settings)) as c:
        papers = _walk(c, {"limit": 11, "category": ["cs.CL", "stat.ML"]})
        ids = [p["arxiv_id"] for p in papers]
        assert len(ids) == 120 == len(set(ids))
        assert ids == [p["arxiv_id"] for p in _walk(c, {"limit": 200, "category": "cs"})]
        days = c.get("/api/v1/days", params={"category": "cs.CL"}).json()["days"]
        assert sum(d["papers"] for d in days) == 80


def test_papers_filters(client: TestClient) -> None:
    cl = _walk(client, {"category": "cs.CL", "limit": 50})
    assert len(cl) == 200 and all("cs.CL" in p["categories"] for p in cl)
    either = _walk(client, {"category": ["cs.CL", "stat.ML"], "limit": 50})
    assert len(either) == N_PAPERS
    # An archive stands for its categories.
    assert len(_walk(client, {"category": "stat", "limit": 200})) == 100
    day = FIRST_DAY + timedelta(days=2)
    ranged = _walk(client, {"from": day.isoformat(), "to": day.isoformat(), "limit": 7})
    assert len(ranged) == 30 and {p["sort_date"] for p in ranged} == {day.isoformat()}
    assert client.get("/api/v1/papers", params={"from": "2030-01-01"}).json()["papers"] == []


def test_papers_bad_parameters(client: TestClient) -> None:
    assert_error(client.get("/api/v1/papers", params={"category": "cs.XX"}), 400, "bad_request")
    assert_error(
        client.get("/api/v1/papers", params={"from": "2025-02-01", "to": "2025-01-01"}), 400
    )
    assert_error(client.get("/api/v1/papers", params={"category": ["cs.CL"] * 21}), 400)
    for params in ({"limit": 0}, {"limit": 201}, {"from": "2025-13-01"}, {"limit": "x"}):
        assert_error(client.get("/api/v1/papers", params=params), 422, "invalid_parameter")
    assert_error(client.get("/api/v1/papers", params={"page_token": "x" * 600}), 422)


def test_tampered_or_foreign_page_tokens_are_400(client: TestClient) -> None:
    token = client.get("/api/v1/papers", params={"limit": 5}).json()["next_page_token"]
    version, body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["p"][1] = "2501.99999"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    for bad in (
        f"{version}.{forged}.{sig}",
        f"{version}.{body}.{flipped}",
        f"v2.{body}.{sig}",
        token[:-5],
        "garbage",
        "v1.!!!.???",
        "v1..",
        "v1.e30.",
        "ü" * 10,
    ):
        r = client.get("/api/v1/papers", params={"limit": 5, "page_token": bad})
        assert_error(r, 400, "bad_request")
    # A token is bound to its filters.
    r = client.get("/api/v1/papers", params={"limit": 5, "category": "cs.CL", "page_token": token})
    assert_error(r, 400)
    assert "filters" in r.json()["error"]["message"]
    # ... and to its listing.
    r = client.get("/api/v1/venues/iclr2025", params={"page_token": token})
    assert_error(r, 400)


def test_signed_token_with_bad_position_is_400(db_env: Settings, client: TestClient) -> None:
    """Even a correctly signed token (e.g. signed with a leaked key) cannot cause a 500."""
    filters = fingerprint([], None, None)
    for position in ([], ["not-a-date", "x"], ["2025-01-01", 5], [1, 2], "x"):
        token = encode_page_token(db_env, "papers", filters, position)  # type: ignore[arg-type]
        assert_error(client.get("/api/v1/papers", params={"page_token": token}), 400)
    venue_filters = fingerprint("iclr2025")
    for position in (["1"], [1.5], [True], [1, 2]):
        token = encode_page_token(db_env, "venue", venue_filters, position)
        assert_error(client.get("/api/v1/venues/iclr2025", params={"page_token": token}), 400)


# --- one paper, ETag and 304 -------------------------------------------------------------


def test_paper_etag_and_304(client: TestClient) -> None:
    r = client.get("/api/v1/papers/2501.00003v1")
    assert r.status_code == 200
    body = r.json()
    assert body["arxiv_id"] == "2501.00003" and body["categories"] == ["cs.CL"]
    assert body["versions"][0]["version"] == 1
    etag = r.headers["etag"]
    assert etag.startswith('"') and "max-age=" in r.headers["cache-control"]
    again = client.get("/api/v1/papers/2501.00003", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    weak = client.get("/api/v1/papers/2501.00003", headers={"If-None-Match": f'"x", W/{etag}'})
    assert weak.status_code == 304
    other = client.get("/api/v1/papers/2501.00003", headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200 and other.json() == body
    assert client.get("/api/v1/papers/2501.00004").headers["etag"] != etag


def test_paper_errors(client: TestClient) -> None:
    assert_error(client.get("/api/v1/papers/not-an-id"), 400, "bad_request")
    assert_error(client.get("/api/v1/papers/2501.99999"), 404, "not_found")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/papers?limit=3",
        "/api/v1/categories",
        "/api/v1/days?category=cs.CL",
        "/api/v1/venues",
        "/api/v1/venues/iclr2025",
    ],
)
def test_listings_are_cacheable(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "public, max-age=60"
    not_modified = client.get(path, headers={"If-None-Match": r.headers["etag"]})
    assert not_modified.status_code == 304 and not not_modified.content


# --- categories, days, venues ------------------------------------------------------------


def test_categories_tree_with_counts(client: TestClient) -> None:
    groups = client.get("/api/v1/categories").json()["groups"]
    cats = {c["id"]: c for g in groups for a in g["archives"] for c in a["categories"]}
    assert cats["cs.CL"]["papers"] == 200
    assert cats["cs.LG"]["papers"] == 200
    assert cats["stat.ML"]["papers"] == 100
    assert cats["cs.CL"]["name"] == "Computation and Language"
    assert cats["math.NA"]["papers"] == 0
    cs = next(a for g in groups for a in g["archives"] if a["id"] == "cs")
    assert cs["papers"] == 400


def test_days(client: TestClient) -> None:
    body = client.get("/api/v1/days", params={"category": "cs.CL"}).json()
    assert body["categories"] == ["cs.CL"]
    assert len(body["days"]) == 10
    assert body["days"][0]["day"] == (FIRST_DAY + timedelta(days=9)).isoformat()
    assert sum(d["papers"] for d in body["days"]) == 200
    every = client.get("/api/v1/days").json()
    assert sum(d["papers"] for d in every["days"]) == N_PAPERS  # each paper once per day
    some = client.get(
        "/api/v1/days", params={"from": FIRST_DAY.isoformat(), "to": FIRST_DAY.isoformat()}
    ).json()
    assert some["days"] == [{"day": FIRST_DAY.isoformat(), "papers": 30}]
    assert len(client.get("/api/v1/days", params={"limit": 3}).json()["days"]) == 3
    assert_error(client.get("/api/v1/days", params={"category": "nope"}), 400)
    assert_error(client.get("/api/v1/days", params={"limit": 1001}), 422)


def test_venues(client: TestClient) -> None:
    venues = client.get("/api/v1/venues").json()["venues"]
    assert [(v["name"], v["papers"], v["linked_to_arxiv"]) for v in venues] == [("iclr2025", 7, 1)]
    first = client.get("/api/v1/venues/iclr2025", params={"limit": 3}).json()
    assert first["venue"]["name"] == "iclr2025"
    assert first["papers"][0]["arxiv_id"] == "2501.00001"
    seen = [p["venue_paper_id"] for p in first["papers"]]
    token = first["next_page_token"]
    while token:
        page = client.get("/api/v1/venues/iclr2025", params={"limit": 3, "page_token": token})
        seen += [p["venue_paper_id"] for p in page.json()["papers"]]
        token = page.json()["next_page_token"]
    assert seen == [f"v{i}" for i in range(7)]
    assert_error(client.get("/api/v1/venues/neurips1900"), 404, "not_found")
    assert_error(client.get("/api/v1/venues/bad name!"), 422)
    assert_error(client.get("/api/v1/venues/" + "x" * 65), 422)


def test_search_and_stats_keep_their_shape(client: TestClient) -> None:
    r = client.get("/api/v1/search", params={"q": "transformers", "limit": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == "transformers" and len(body["hits"]) == 5
    assert set(body["hits"][0]) == {
        "arxiv_id",
        "title",
        "authors",
        "primary_category",
        "date",
        "score",
    }
    assert_error(client.get("/api/v1/search", params={"q": "x" * 10_001}), 422)
    stats = client.get("/api/v1/stats").json()
    assert stats["papers"] == N_PAPERS and stats["venues"]["iclr2025"]["papers"] == 7


# --- clicks and admin --------------------------------------------------------------------


def test_clicks(client: TestClient) -> None:
    url = "/api/v1/papers/arXiv:2501.00002v1/clicks"
    assert client.post(url, json={"kind": "pdf"}).json() == {
        "arxiv_id": "2501.00002",
        "pdf": 1,
        "summary": 0,
    }
    client.post(url, json={"kind": "pdf"})
    assert client.post(url, json={"kind": "summary"}).json()["pdf"] == 2
    assert_error(client.post("/api/v1/papers/2501.99999/clicks", json={"kind": "pdf"}), 404)
    assert_error(client.post("/api/v1/papers/bogus/clicks", json={"kind": "pdf"}), 400)
    for body in ({"kind": "html"}, {}, {"kind": "pdf", "x": 1}):
        assert_error(client.post(url, json=body), 422, "invalid_parameter")
    assert_error(client.post(url, content=b"not json"), 422)
    # A JSON body sent as a form-like content type (a cross-site form post) is refused.
    plain = client.post(url, content=b'{"kind": "pdf"}', headers={"content-type": "text/plain"})
    assert_error(plain, 422)
    assert_error(client.post(url, content=b" " * 70_000, headers=_JSON), 413, "too_large")
    # Never a state-changing GET: the route is POST only, and says so.
    r = client.get(url)
    assert r.status_code == 405 and r.headers["allow"] == "POST"


_JSON = {"content-type": "application/json"}


def test_admin_reindex_auth(client: TestClient) -> None:
    url = "/api/v1/admin/reindex"
    r = client.post(url)
    assert_error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_error(client.post(url, headers={"Authorization": "Bearer wrong"}), 401)
    assert_error(client.post(url, headers={"Authorization": "Basic s3cret-token"}), 401)
    assert_error(
        client.post(url, headers={"Authorization": "Bearer s3cret-tokenü".encode("latin-1")}), 401
    )
    ok = client.post(url, headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"status": "ok", "linked_venue_papers": 1}
    assert client.get("/api/v1/search", params={"q": "transformers"}).json()["total"] > 0
    assert client.get(url).status_code == 405


def test_admin_disabled_without_a_token(db_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAPERSHELF_ADMIN_TOKEN")
    get_settings.cache_clear()
    with _client(make_app(get_settings())) as c:
        r = c.post("/api/v1/admin/reindex", headers={"Authorization": "Bearer anything"})
    assert_error(r, 403, "admin_disabled")
    assert "PAPERSHELF_ADMIN_TOKEN" in r.json()["error"]["message"]


# --- middleware --------------------------------------------------------------------------


def test_security_headers_and_request_id(client: TestClient) -> None:
    for path in ("/api/v1/stats", "/api/v1/papers/2501.99999", "/nowhere"):
        r = client.get(path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src")[0]
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert len(r.headers["x-request-id"]) == 32
    echoed = client.get("/api/v1/stats", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    odd = client.get("/api/v1/stats", headers={"X-Request-ID": "bad id\twith spaces"})
    assert odd.headers["x-request-id"] != "bad id\twith spaces"


def test_docs_page_gets_a_csp_that_lets_it_run(client: TestClient) -> None:
    r = client.get("/docs")
    if r.status_code == 404:  # an app without docs: nothing to check
        return
    assert "cdn.jsdelivr.net" in r.headers["content-security-policy"]
    assert "cdn.jsdelivr.net" not in client.get("/api/v1/stats").headers["content-security-policy"]


def test_access_log_line(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="app.web.middleware"):
        client.get("/api/v1/papers/2501.00001", headers={"X-Request-ID": "req-1"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "app.web.middleware"]
    assert lines[-1]["route"] == "/api/v1/papers/{arxiv_id:path}"
    assert lines[-1]["status"] == 200 and lines[-1]["request_id"] == "req-1"
    assert lines[-1]["method"] == "GET" and lines[-1]["ms"] >= 0


def test_metrics_count_requests(db_env: Settings) -> None:
    registry = CollectorRegistry()
    with _client(make_app(db_env, registry)) as c:
        c.get("/api/v1/papers/2501.00001")
        c.get("/api/v1/papers/2501.00002")
        c.get("/api/v1/papers/2501.99999")
        c.get("/no/such/page")
        text = c.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}).text
    route = "/api/v1/papers/{arxiv_id:path}"
    assert (
        registry.get_sample_value(
            "papershelf_http_requests_total", {"route": route, "method": "GET", "status": "200"}
        )
        == 2
    )
    assert (
        registry.get_sample_value(
            "papershelf_http_requests_total", {"route": route, "method": "GET", "status": "404"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "papershelf_http_request_duration_seconds_count", {"route": route}
        )
        == 3
    )
    assert 'route="<unmatched>"' in text and "papershelf_http_requests_total" in text


def test_unhandled_error_is_a_shaped_500_with_headers(db_env: Settings) -> None:
    registry = CollectorRegistry()
    app = make_app(db_env, registry)

    @app.get("/api/v1/boom")
    def boom() -> None:
        raise RuntimeError("kaput")

    with TestClient(app, raise_server_exceptions=False, client=("203.0.113.5", 1)) as c:
        r = c.get("/api/v1/boom")
    assert_error(r, 500, "internal_error")
    assert "kaput" not in r.text
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-request-id"]
    sample = registry.get_sample_value(
        "papershelf_http_requests_total",
        {"route": "/api/v1/boom", "method": "GET", "status": "500"},
    )
    assert sample == 1


def test_cors_only_for_api_and_listed_origins(db_env: Settings) -> None:
    settings = db_env.model_copy()
    object.__setattr__(settings, "cors_origins", ["https://ok.example"])
    app = make_app(settings)

    @app.get("/page")
    def page() -> dict[str, str]:
        return {"ok": "yes"}

    with _client(app) as c:
        ok = c.get("/api/v1/stats", headers={"Origin": "https://ok.example"})
        assert ok.headers["access-control-allow-origin"] == "https://ok.example"
        assert "etag" in ok.headers.get("access-control-expose-headers", "").lower()
        other = c.get("/api/v1/stats", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = c.options(
            "/api/v1/papers/2501.00001/clicks",
            headers={
                "Origin": "https://ok.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://ok.example"
        not_api = c.get("/page", headers={"Origin": "https://ok.example"})
        assert "access-control-allow-origin" not in not_api.headers
    # No origins configured (the default): no CORS headers at all.
    with _client(make_app(db_env)) as c:
        r = c.get("/api/v1/stats", headers={"Origin": "https://ok.example"})
        assert "access-control-allow-origin" not in r.headers


def _limited_settings(settings: Settings, **extra: object) -> Settings:
    limited = settings.model_copy(update=extra)
    object.__setattr__(limited, "rate_limit_per_minute", 60)
    object.__setattr__(limited, "rate_limit_burst", 3)
    return limited


def test_rate_limit_429(db_env: Settings) -> None:
    app = make_app(_limited_settings(db_env))

    @app.get("/elsewhere")
    def elsewhere() -> dict[str, str]:
        return {"ok": "yes"}

    with _client(app) as c:
        statuses = [c.get("/api/v1/stats").status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        r = c.get("/api/v1/papers/2501.00001")
        assert_error(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["x-content-type-options"] == "nosniff"
        # Other paths and other clients are not limited.
        assert all(c.get("/elsewhere").status_code == 200 for _ in range(5))
        admin = {"Authorization": "Bearer s3cret-token"}
        assert c.get("/metrics", headers=admin).status_code == 200
    with TestClient(app, client=("192.0.2.77", 1)) as other:
        assert other.get("/api/v1/stats").status_code == 200


def test_exports_share_the_rate_limit(db_env: Settings) -> None:
    """An export can run a whole search, so a flood of them is limited like /search."""
    with _client(make_app(_limited_settings(db_env))) as c:
        statuses = [c.get("/export.bib?list=search&q=quokka").status_code for _ in range(4)]
    assert statuses[:3] != [429, 429, 429]
    assert statuses[3] == 429


def test_rate_limit_shared_through_redis(db_env: Settings, tmp_path: Path) -> None:
    from app.cli.runtime.redis_server import EmbeddedRedis

    with EmbeddedRedis(tmp_path / "redis") as server:
        settings = _limited_settings(db_env, redis_url=server.url)
        first, second = make_app(settings), make_app(settings)
        address = ("198.51.100.9", 1)
        with TestClient(first, client=address) as a, TestClient(second, client=address) as b:
            assert [a.get("/api/v1/stats").status_code for _ in range(2)] == [200, 200]
            assert b.get("/api/v1/stats").status_code == 200
            # The third token went through the other app: both now refuse.
            assert_error(a.get("/api/v1/stats"), 429)
            assert_error(b.get("/api/v1/stats"), 429)


def test_rate_limit_falls_back_when_redis_is_down(db_env: Settings) -> None:
    settings = _limited_settings(db_env, redis_url="redis://127.0.0.1:9/0")
    with _client(make_app(settings)) as c:
        statuses = [c.get("/api/v1/stats").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_local_buckets_refill_and_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from app.web import middleware

    now = [1000.0]
    monkeypatch.setattr(middleware.time, "monotonic", lambda: now[0])
    buckets = middleware.LocalBuckets(rate=2, burst=2, max_clients=10)

    def take(key: str) -> float:
        return asyncio.run(buckets.take(key))

    assert [take("a"), take("a")] == [0, 0]
    assert take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert take("a") == 0
    for i in range(50):
        take(f"client-{i}")
        now[0] += 0.01
    assert len(buckets._buckets) <= 10
