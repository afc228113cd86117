"""The minimal site and JSON API: real requests, one error shape, no 500 for user input."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient

from app.db import store
from app.db.engine import make_engine
from app.ingest.records import AnnounceKind, Announcement, PaperRecord
from app.settings import get_settings


@pytest.fixture
def client(site_settings):  # type: ignore[no-untyped-def]
    engine = make_engine(site_settings().database_url_resolved)
    with engine.begin() as conn:
        store.upsert_papers(
            conn,
            [
                PaperRecord(
                    arxiv_id="hep-th/9901001",
                    title="Schrödinger operators on strings",
                    abstract="We study the spectrum.",
                    authors=["Erwin Example"],
                    primary_category="hep-th",
                    categories=["hep-th"],
                    version=2,
                    first_submitted_at=datetime(1999, 1, 1, tzinfo=UTC),
                    announcements=[Announcement("hep-th", date(1999, 1, 4), AnnounceKind.NEW)],
                )
            ],
        )
    engine.dispose()
    from app.main import create_app

    app = create_app()  # this test's settings: its own rate limits and caches

    with TestClient(app) as c:
        yield c
    get_settings.cache_clear()


def test_health(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    "spelling",
    [
        "hep-th/9901001",
        "hep-th/9901001v2",
        "arXiv:hep-th/9901001",
        "https://arxiv.org/abs/hep-th/9901001v1",
    ],
)
def test_paper_by_any_id_spelling(client: TestClient, spelling: str) -> None:
    r = client.get(f"/api/v1/papers/{spelling}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["arxiv_id"] == "hep-th/9901001"
    assert body["title"] == "Schrödinger operators on strings"
    assert body["versions"] == [
        {"version": 1, "submitted_at": "1999-01-01T00:00:00"},
        {"version": 2, "submitted_at": None},
    ]


def test_invalid_and_unknown_ids(client: TestClient) -> None:
    bad = client.get("/api/v1/papers/not-an-id")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "bad_request"
    missing = client.get("/api/v1/papers/2501.00001")
    assert missing.status_code == 404
    assert "2501.00001" in missing.json()["error"]["message"]


def test_search_api_and_bad_parameters(client: TestClient) -> None:
    r = client.get("/api/v1/search", params={"q": "Schrodinger"})
    assert r.status_code == 200
    assert [h["arxiv_id"] for h in r.json()["hits"]] == ["hep-th/9901001"]
    for params in (
        {"q": "x", "limit": 0},
        {"q": "x", "from": "2025-13-01"},
        {"q": "x" * 10_001},
        {},
    ):
        r = client.get("/api/v1/search", params=params)
        assert r.status_code == 422, params
        assert r.json()["error"]["code"] == "invalid_parameter"
    for q in ['"', "-", "OR OR", "ti:"]:
        assert client.get("/api/v1/search", params={"q": q}).status_code == 200
    # A NUL is refused before any query runs (PostgreSQL text cannot hold one).
    assert client.get("/api/v1/search", params={"q": "\x00"}).status_code == 400


def test_index_page(client: TestClient) -> None:
    r = client.get("/", params={"q": "spectrum"})
    assert r.status_code == 200
    assert "Schrödinger operators on strings" in r.text


def test_index_says_when_arxiv_is_unreachable(client: TestClient) -> None:
    from app.db import runs

    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        run_id = runs.start_run(conn, kind="rss", source="https://rss.arxiv.org/rss/cs.CL")
        runs.finish_run(conn, run_id, status="failed", error="ConnectError: no route to host")
    page = client.get("/").text
    assert "arXiv could not be reached" in page
    assert "no route to host" in page
    assert "Next arXiv announcement" in page
    with engine.begin() as conn:
        run_id = runs.start_run(conn, kind="rss", source="https://rss.arxiv.org/rss/cs.CL")
        runs.finish_run(conn, run_id, status="ok")
    assert "arXiv could not be reached" not in client.get("/").text


def test_related_routes_are_reachable_in_the_real_app(client: TestClient) -> None:
    """Route order matters: the catch-all paper routes must not swallow .../related."""
    api = client.get("/api/v1/papers/hep-th/9901001/related")
    assert api.status_code == 200, api.text
    assert api.json() == []  # keywords not built yet
    page = client.get("/arxiv/hep-th/9901001/related")
    assert page.status_code == 200
    assert "papershelf reindex" in page.text
