"""/search/feed as a saved search's alert: announcement order, the filters and toggles, a
canonical self link, and a 400 for every bad parameter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient

from app.db import store
from app.db.engine import make_engine
from app.ingest.records import Announcement, PaperRecord
from app.settings import Settings

ATOM = "{http://www.w3.org/2005/Atom}"


def paper(n: int, cats: list[str], *announced: tuple[str, date, str]) -> PaperRecord:
    return PaperRecord(
        arxiv_id=f"2607.{n:05d}",
        title=f"Quokka study {n}",
        abstract="Quokkas everywhere.",
        authors=["A. Author"],
        primary_category=cats[0],
        categories=cats,
        version=len(announced),
        first_submitted_at=datetime(2026, 6, 1, tzinfo=UTC),
        announcements=[Announcement(c, d, k, 1) for c, d, k in announced],  # type: ignore[arg-type]
    )


@pytest.fixture
def client(site_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    settings = site_settings(SEARCH_ENGINE="database")
    engine = make_engine(settings.database_url_resolved)
    with engine.begin() as conn:
        store.upsert_papers(
            conn,
            [
                paper(1, ["cs.LG"], ("cs.LG", date(2026, 6, 2), "new")),
                paper(2, ["cs.LG"], ("cs.LG", date(2026, 6, 10), "new")),
                # Old, but replaced most recently of all.
                paper(
                    3,
                    ["cs.LG"],
                    ("cs.LG", date(2026, 5, 1), "new"),
                    ("cs.LG", date(2026, 6, 20), "replace"),
                ),
                paper(
                    4,
                    ["cs.CV", "cs.LG"],
                    ("cs.CV", date(2026, 6, 5), "new"),
                    ("cs.LG", date(2026, 6, 5), "cross"),
                ),
            ],
        )
    engine.dispose()
    from app.main import create_app

    app = create_app()  # this test's settings: its own rate limits and caches

    with TestClient(app) as c:
        yield c


def entries(client: TestClient, url: str) -> tuple[list[str], str]:
    r = client.get(url)
    assert r.status_code == 200, r.text
    root = ElementTree.fromstring(r.content)
    ids = [str(e.findtext(f"{ATOM}id")).rsplit("/", 1)[-1] for e in root.findall(f"{ATOM}entry")]
    link = root.find(f"{ATOM}link[@rel='self']")
    assert link is not None
    return ids, str(link.get("href"))


def test_newest_announcement_first(client: TestClient) -> None:
    ids, _ = entries(client, "/search/feed?q=quokka")
    assert ids == ["2607.00002", "2607.00004", "2607.00001", "2607.00003"]


def test_replacements_bring_a_new_version_to_the_top(client: TestClient) -> None:
    ids, _ = entries(client, "/search/feed?q=quokka&replacements=1")
    assert ids == ["2607.00003", "2607.00002", "2607.00004", "2607.00001"]


def test_crosslists_off_keeps_the_lists_own_papers(client: TestClient) -> None:
    ids, _ = entries(client, "/search/feed?q=quokka&category=cs.LG&crosslists=0")
    assert ids == ["2607.00002", "2607.00001", "2607.00003"]
    ids, _ = entries(client, "/search/feed?q=quokka&category=cs.CV")
    assert ids == ["2607.00004"]


def test_the_self_link_is_canonical(client: TestClient) -> None:
    _, self_url = entries(
        client, "/search/feed?replacements=yes&crosslists=0&category=cs.lg&q=quokka"
    )
    assert self_url.endswith("/search/feed?q=quokka&category=cs.LG&crosslists=0&replacements=1")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("q=quokka&crosslists=maybe", "crosslists must be 1 or 0"),
        ("q=quokka&replacements=2", "replacements must be 1 or 0"),
        ("q=quokka&category=cs.NOPE", "unknown category"),
        ("q=quokka&from=2026-13-01", "not a date"),
        ("q=quokka&to=soon", "not a date"),
    ],
)
def test_bad_parameters_are_400s(client: TestClient, query: str, message: str) -> None:
    r = client.get(f"/search/feed?{query}")
    assert r.status_code == 400 and message in r.text
