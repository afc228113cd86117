"""What changed in a replaced paper, on the day listing (with its "hide replacements"
toggle), the paper page, the JSON API (and its kind filter) and the category feed; a stale
TL;DR is noted and queued again with the day it was replaced."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.artifacts import summaries
from app.db import store
from app.db.engine import make_engine
from app.ingest.records import AnnounceKind, Announcement, PaperRecord, Version
from app.settings import Settings

FIRST, DAY = date(2026, 3, 2), date(2026, 3, 3)
REPLACED, NEW, UNSEEN = "2603.00001", "2603.00002", "2603.00003"


def rec(arxiv_id: str, version: int, day: date, kind: AnnounceKind, **fields: Any) -> PaperRecord:
    values: dict[str, Any] = {
        "arxiv_id": arxiv_id,
        "title": f"Quokkas in the wild ({arxiv_id})",
        "abstract": "We count quokkas on Rottnest Island.",
        "authors": ["Ada Lovelace", "Alan Turing"],
        "primary_category": "cs.CL",
        "categories": ["cs.CL"],
        "version": version,
        "versions": [Version(n) for n in range(1, version + 1)],
        "first_submitted_at": datetime(2026, 3, 1, tzinfo=UTC),
        "announcements": [Announcement("cs.CL", day, kind, 0)],
    }
    values.update(fields)
    return PaperRecord(**values)


def seed_versions(engine: Engine) -> None:
    """A paper stored at v1 on FIRST and replaced by v3 on DAY (its TL;DR written for v1), a
    new paper on DAY, and a replacement on DAY whose earlier text was never stored."""
    with engine.begin() as conn:
        store.upsert_papers(conn, [rec(REPLACED, 1, FIRST, AnnounceKind.NEW, comments="9 pages")])
        summaries.upsert(conn, [summaries.Written(REPLACED, 1, "fake-1", "Counts quokkas.")])
    with engine.begin() as conn:
        store.upsert_papers(
            conn,
            [
                rec(
                    REPLACED,
                    3,
                    DAY,
                    AnnounceKind.REPLACE,
                    abstract="We count <script>alert('quokka')</script> quokkas on Rottnest.",
                    comments="9 pages; accepted at ICLR 2026",
                ),
                rec(NEW, 1, DAY, AnnounceKind.NEW),
                rec(UNSEEN, 2, DAY, AnnounceKind.REPLACE),
            ],
        )


@pytest.fixture
def client(site_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    from app.main import create_app

    engine = make_engine(site_settings().database_url_resolved)
    seed_versions(engine)
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


def test_a_replacement_card_shows_what_changed_collapsed(client: TestClient) -> None:
    response = client.get(f"/arxiv/cs.CL?date={DAY}")
    assert response.status_code == 200
    replaced = card(response.text, REPLACED)
    assert '<details class="changes" data-changes="diff">' in replaced  # collapsed: no `open`
    assert '<span class="versions">v1 → v3</span>: Abstract, Comments changed' in replaced
    assert "9 pages<ins>; accepted at ICLR 2026</ins>" in replaced
    assert "Rottnest<del> Island</del>." in replaced
    # Hostile text in the new abstract is text, in the diff as everywhere else.
    assert "<script>" not in replaced and "&lt;script&gt;" in replaced
    # Its TL;DR was written for v1 and says so until the pool writes the new one.
    assert "(written for v1)" in replaced
    unseen = card(response.text, UNSEEN)
    assert 'data-changes="unseen"' in unseen and "v1 → v2" in unseen
    assert "the earlier text was not seen here" in unseen
    assert "data-changes" not in card(response.text, NEW)


def test_hide_replacements_is_a_plain_link_and_its_own_cached_page(client: TestClient) -> None:
    shown = client.get(f"/arxiv/cs.CL?date={DAY}")
    assert 'data-replacements-toggle="hide"' in shown.text
    assert f'href="/arxiv/cs.CL?date={DAY}&replacements=hide"' in shown.text
    hidden = client.get(f"/arxiv/cs.CL?date={DAY}&replacements=hide")
    assert hidden.status_code == 200
    assert f'id="{NEW}"' in hidden.text
    assert f'id="{REPLACED}"' not in hidden.text and f'id="{UNSEEN}"' not in hidden.text
    assert "replacements hidden" in hidden.text
    assert 'data-replacements-toggle="show"' in hidden.text
    assert hidden.headers["etag"] != shown.headers["etag"]
    # Served again (from the page cache), each stays what it was.
    again = client.get(f"/arxiv/cs.CL?date={DAY}")
    assert f'id="{REPLACED}"' in again.text and again.headers["etag"] == shown.headers["etag"]
    hidden_again = client.get(f"/arxiv/cs.CL?date={DAY}&replacements=hide")
    assert f'id="{REPLACED}"' not in hidden_again.text


def test_a_bad_replacements_value_is_a_400(client: TestClient) -> None:
    response = client.get(f"/arxiv/cs.CL?date={DAY}&replacements=<b>maybe</b>")
    assert response.status_code == 400
    assert "replacements must be show or hide" in response.text
    assert "<b>maybe" not in response.text


def test_the_paper_page_lists_the_versions_and_the_diff(client: TestClient) -> None:
    page = client.get(f"/arxiv/{REPLACED}").text
    versions = re.search(r'<details class="versions".*?</details>', page, re.S)
    assert versions, page
    text = re.sub(r"<[^>]+>", "", versions.group(0))
    assert "3 versions" in text
    assert "v1 · text kept here · TL;DR written for this version" in text
    assert "v3 · current" in text
    assert '<span class="versions">v1 → v3</span>' in card(page, REPLACED)


def test_the_api_filters_by_kind_and_says_what_changed(client: TestClient) -> None:
    body = client.get(f"/api/v1/listings/cs.CL?date={DAY}&kind=replace").json()
    papers = {p["arxiv_id"]: p for s in body["sections"] for p in s["papers"]}
    assert set(papers) == {REPLACED, UNSEEN}
    replaced = papers[REPLACED]
    assert replaced["previous_version"] == 1 and replaced["version"] == 3
    comments = next(c for c in replaced["changes"] if c["field"] == "comments")
    assert comments["diff"] == [["=", "9 pages"], ["+", "; accepted at ICLR 2026"]]
    assert papers[UNSEEN]["previous_version"] == 1 and papers[UNSEEN]["changes"] is None

    only_new = client.get(f"/api/v1/listings/cs.CL?date={DAY}&kind=new,cross").json()
    assert [p["arxiv_id"] for s in only_new["sections"] for p in s["papers"]] == [NEW]
    assert only_new["total"] == 1


@pytest.mark.parametrize("kind", ["bogus", "new,<script>", ",", "replace-crossed"])
def test_an_unknown_kind_is_a_400_that_names_the_kinds(client: TestClient, kind: str) -> None:
    response = client.get(f"/api/v1/listings/cs.CL?date={DAY}", params={"kind": kind})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "new, cross, replace, replace-cross" in message


def test_the_category_feed_says_a_paper_was_replaced(client: TestClient) -> None:
    feed = client.get(f"/arxiv/cs.CL/feed?date={DAY}").text
    assert "Replaced: v1 → v3 (Abstract, Comments changed). We count" in feed
    assert "Replaced: v1 → v2 (earlier text not seen)." in feed
    assert feed.count("Replaced:") == 2


def test_the_days_ml_job_writes_the_replaced_papers_tldr_again(engine: Engine) -> None:
    # The TL;DR of v1 is stale once v3 is stored; the replacement day's list job (which runs
    # ahead of every back-fill job) takes it, and the new TL;DR is recorded against v3.
    seed_versions(engine)
    with engine.begin() as conn:
        pending = {p.arxiv_id: p for p in summaries.pending_for_day(conn, DAY, "cs.CL", "fake-1")}
        assert pending[REPLACED].version == 3
        summaries.upsert(conn, [summaries.Written(REPLACED, 3, "fake-1", "Counts quokkas v3.")])
        pending_after = summaries.pending_for_day(conn, DAY, "cs.CL", "fake-1")
    assert REPLACED not in {p.arxiv_id for p in pending_after}
