"""Atom feeds, parsed with feedparser: required elements present, text escaped, no 500s."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from xml.etree import ElementTree

import feedparser
import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.app.web.test_pages import EVIL_TITLE, make_client

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def client(site_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from make_client(site_settings)


def fetch_feed(client: TestClient, url: str) -> feedparser.FeedParserDict:
    r = client.get(url)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/atom+xml")
    # Well-formed XML, with the Atom elements every feed and entry must have.
    root = ElementTree.fromstring(r.content)
    assert root.tag == f"{ATOM}feed"
    for tag in ("id", "title", "updated"):
        assert root.find(f"{ATOM}{tag}") is not None, tag
    assert root.find(f"{ATOM}link[@rel='self']") is not None
    for entry in root.findall(f"{ATOM}entry"):
        for tag in ("id", "title", "updated", "link"):
            assert entry.find(f"{ATOM}{tag}") is not None, tag
    parsed = feedparser.parse(r.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return parsed


def test_category_feed(client: TestClient) -> None:
    feed = fetch_feed(client, "/arxiv/cs.CL+cs.LG/feed")
    assert feed.feed.title == "Papershelf: cs.CL+cs.LG (2026-03-03)"
    assert any(link.rel == "self" for link in feed.feed.links)
    ids = [e.id for e in feed.entries]
    assert ids == ["https://arxiv.org/abs/2603.00001", "https://arxiv.org/abs/2603.00002"]
    first = feed.entries[0]
    assert first.title == "Sparse attention for long documents"
    assert first.link == "https://arxiv.org/abs/2603.00001"
    assert first.authors[0].name == "Author Number0"
    assert "attention spans" in first.summary
    assert first.updated_parsed is not None
    # The title arrives as text: escaped in the XML, intact after parsing.
    assert feed.entries[1].title == EVIL_TITLE
    raw = client.get("/arxiv/cs.CL+cs.LG-cs.CY/feed").text
    assert "<script>" not in raw and "2603.00002" not in raw


def test_feed_for_old_ids_and_empty_lists(client: TestClient) -> None:
    feed = fetch_feed(client, "/arxiv/hep-th/feed")
    assert [e.id for e in feed.entries] == ["https://arxiv.org/abs/hep-th/9901001"]
    empty = fetch_feed(client, "/arxiv/astro-ph.CO/feed")
    assert empty.entries == []


def test_venue_feed(client: TestClient) -> None:
    feed = fetch_feed(client, "/venue/iclr2018/feed")
    assert feed.feed.title == "Papershelf: iclr2018"
    titles = {e.title: e for e in feed.entries}
    assert set(titles) == {"Sparse attention for long documents", "<i>Unlinked</i> venue paper"}
    linked = titles["Sparse attention for long documents"]
    assert linked.link == "https://arxiv.org/abs/2603.00001"
    assert linked.summary == "Sparse <attention> works."
    assert titles["<i>Unlinked</i> venue paper"].link.endswith("/venue/iclr2018")
    assert client.get("/venue/nope/feed").status_code == 404


def test_search_feed(client: TestClient) -> None:
    feed = fetch_feed(client, "/search/feed?q=attention")
    assert feed.feed.title == "Papershelf search: attention"
    assert {e.id for e in feed.entries} == {
        "https://arxiv.org/abs/2603.00001",
        "https://arxiv.org/abs/2603.00002",
    }
    assert fetch_feed(client, "/search/feed?q=%22").entries == []
    assert client.get("/search/feed").status_code == 400


@pytest.mark.parametrize("path", ["/arxiv/cs.XX/feed", "/arxiv/-cs.AI/feed"])
def test_bad_feed_expressions(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 400
    assert "category" in r.text
