"""TL;DRs from the ML pool on the site and in the API: shown on every card, named by model,
a stale one (older paper version) shown with a note; authors' TL;DRs win."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient

from app.artifacts import summaries
from app.db import store
from app.db.engine import make_engine
from app.ingest.records import AnnounceKind, Announcement, PaperRecord
from app.settings import Settings

DAY = date(2026, 3, 3)


def rec(n: int, version: int) -> PaperRecord:
    return PaperRecord(
        arxiv_id=f"2603.{n:05d}",
        title=f"Paper {n} on quokkas",
        abstract=f"Abstract {n}.",
        authors=["Ada Lovelace"],
        primary_category="cs.CL",
        categories=["cs.CL"],
        version=version,
        first_submitted_at=datetime(2026, 3, 1, tzinfo=UTC),
        announcements=[Announcement("cs.CL", DAY, AnnounceKind.NEW, n)],
    )


@pytest.fixture
def client(site_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    from app.main import create_app

    engine = make_engine(site_settings().database_url_resolved)
    with engine.begin() as conn:
        store.upsert_papers(conn, [rec(1, 1), rec(2, 2), rec(3, 1)])
        summaries.upsert(
            conn,
            [
                summaries.Written("2603.00001", 1, "fake-1", "Quokkas <smile> a lot."),
                summaries.Written("2603.00002", 1, "fake-1", "Written for the first version."),
            ],
        )
    engine.dispose()
    app = create_app()  # this test's settings: its own rate limits and caches
    with TestClient(app) as c:
        yield c


def card(page: str, arxiv_id: str) -> str:
    found = re.search(
        rf'<article class="paper" id="{re.escape(arxiv_id)}".*?</article>', page, re.S
    )
    assert found, arxiv_id
    return found.group(0)


@pytest.mark.parametrize("url", [f"/arxiv/cs.CL?date={DAY}", "/arxiv/2603.00001,2603.00002"])
def test_cards_show_the_tldr(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 200
    page = response.text
    current = card(page, "2603.00001")
    assert "<strong>TL;DR:</strong> Quokkas &lt;smile&gt; a lot." in current
    assert 'data-model="fake-1"' in current and "written for" not in current
    stale = card(page, "2603.00002")
    assert '<p class="tldr stale"' in stale
    assert "Written for the first version." in stale and "(written for v1)" in stale


def test_search_cards_show_the_tldr(client: TestClient) -> None:
    page = client.get("/search", params={"q": "quokkas"}).text
    # The query's words are marked in the TL;DR too.
    assert "<mark>Quokkas</mark> &lt;smile&gt; a lot." in card(page, "2603.00001")
    assert '<p class="tldr" hidden></p>' in card(page, "2603.00003")


def test_api_exposes_the_tldr(client: TestClient) -> None:
    one = client.get("/api/v1/papers/2603.00002").json()
    assert one["tldr"] == "Written for the first version."
    assert (one["tldr_model"], one["tldr_paper_version"], one["tldr_stale"]) == ("fake-1", 1, True)
    none = client.get("/api/v1/papers/2603.00003").json()
    assert (none["tldr"], none["tldr_model"], none["tldr_stale"]) == (None, None, False)

    listed = {p["arxiv_id"]: p for p in client.get("/api/v1/papers").json()["papers"]}
    assert listed["2603.00001"]["tldr"] == "Quokkas <smile> a lot."
    assert listed["2603.00001"]["tldr_stale"] is False
    assert listed["2603.00002"]["tldr_stale"] is True
    assert listed["2603.00003"]["tldr"] is None

    day = client.get("/api/v1/listings/cs.CL", params={"date": DAY.isoformat()}).json()
    papers = {p["arxiv_id"]: p for s in day["sections"] for p in s["papers"]}
    assert papers["2603.00001"]["tldr_model"] == "fake-1"
    assert papers["2603.00002"]["tldr_stale"] is True

    schema = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("PaperOut", "PaperSummary"):
        assert {"tldr", "tldr_model", "tldr_paper_version", "tldr_stale"} <= set(
            schema[name]["properties"]
        )
