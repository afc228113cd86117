"""Atom feeds, parsed with feedparser: required elements present, text escaped, no 500s."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode
from xml.etree import ElementTree

import feedparser
import pytest
from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy import insert, update

from app.db.models import Paper, VenuePaper
from app.ingest.records import VenuePaperRecord
from app.settings import Settings
from tests.app.web.test_pages import D1, EVIL_TITLE, make_client

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


# --- well-formed whatever the store holds --------------------------------------------------

# Every character XML 1.0 forbids that a database can hold (PostgreSQL refuses only NUL).
CONTROLS = "".join(chr(c) for c in (*range(0x01, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)))
DIRTY = f"Dirty\x00 {CONTROLS}text\ufffe\uffff"


def assert_well_formed(client: TestClient, url: str) -> feedparser.FeedParserDict:
    """lxml parses the feed strictly, feedparser without complaint, and no forbidden
    character is left in it."""
    r = client.get(url)
    assert r.status_code == 200, r.text
    root = etree.fromstring(r.content)  # raises on any character XML forbids
    assert root.tag == f"{ATOM}feed"
    assert not set(r.text) & set(CONTROLS + "\x00\ufffe\uffff")
    parsed = feedparser.parse(r.content)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


def plant_dirty_rows(client: TestClient, venue_rows: list[dict[str, object]]) -> None:
    """Write forbidden characters straight into the store, bypassing ingest."""
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(
            update(Paper)
            .where(Paper.arxiv_id.in_(["2603.00001", "2603.00004", "hep-th/9901001"]))
            .values(
                title=f"Sparse attention {DIRTY}",
                abstract=f"attention {DIRTY}",
                authors=[f"Ann {DIRTY}"],
            )
        )
        conn.execute(insert(VenuePaper), venue_rows)


def test_every_feed_stays_well_formed_whatever_the_store_holds(
    client: TestClient, shared_data: Path
) -> None:
    # The real case: ICLR 2018's list has an abstract with U+0002 and an author with U+0006.
    with gzip.open(shared_data / "venues/paperlists/iclr2018.json.gz") as fh:
        real = [r for r in json.load(fh) if r["id"] in ("Skp1ESxRZ", "HkMhoDITb")]
    assert "\x02" in real[0]["abstract"] + real[1]["abstract"]
    venue_rows: list[dict[str, object]] = [
        {
            "venue": "iclr2018",
            "venue_paper_id": r["id"],
            "title": r["title"],
            "title_key": r["title"].lower(),
            "authors": r["author"].split(";"),
            "abstract": r["abstract"],
            "site": r["site"],
        }
        for r in real
    ]
    venue_rows.append(
        {
            "venue": "iclr2018",
            "venue_paper_id": f"planted{DIRTY}",
            "title": DIRTY,
            "title_key": "dirty",
            "authors": [DIRTY],
            "abstract": DIRTY,
            "tldr": DIRTY,
            "site": f"https://example.org/{DIRTY}",
        }
    )
    plant_dirty_rows(client, venue_rows)

    for url in (
        "/arxiv/cs.CL/feed",
        "/arxiv/cs.CL+cs.LG/feed",
        f"/arxiv/cs.CL/feed?date={D1}",
        "/arxiv/hep-th/feed",
        "/venue/iclr2018/feed",
    ):
        assert_well_formed(client, url)
    venue_feed = assert_well_formed(client, "/venue/iclr2018/feed")
    summaries = {e.title: e.get("summary") for e in venue_feed.entries}
    synthesizing = summaries["Towards Synthesizing Complex Programs From Input-Output Examples"]
    assert synthesizing.startswith("In recent years, deep learning techniques")
    assert summaries["Dirty text"] == "Dirty text"  # the text around them is kept
    category = assert_well_formed(client, "/arxiv/cs.CL/feed")
    assert category.entries[0].title == "Sparse attention Dirty text"
    assert category.entries[0].authors[0].name == "Ann Dirty text"

    # A search feed echoes its query in the title: forbidden characters in it are dropped.
    # (a NUL in a query parameter is refused before any route: see test_protocol)
    query = f"attention{DIRTY.replace(chr(0), '')}"
    search = assert_well_formed(client, "/search/feed?" + urlencode({"q": query}))
    assert search.feed.title.startswith("Papershelf search: attentionDirty")
    assert_well_formed(client, "/search/feed?" + urlencode({"q": "attention \x01"}))


# --- one day's feed, links from the public address -------------------------------------


def test_category_feed_honours_date(client: TestClient) -> None:
    latest = fetch_feed(client, "/arxiv/cs.CL/feed")
    assert [e.id for e in latest.entries] == ["https://arxiv.org/abs/2603.00001"]
    older = fetch_feed(client, f"/arxiv/cs.CL/feed?date={D1}")
    assert older.feed.title == f"Papershelf: cs.CL ({D1})"
    assert [e.id for e in older.entries] == ["https://arxiv.org/abs/2603.00004"]
    # The self link names the day, and so does every other link: they agree with the entries.
    links = {link.rel: link.href for link in older.feed.links}
    assert links["self"] == older.feed.id == f"http://testserver/arxiv/cs.CL/feed?date={D1}"
    assert links["alternate"] == f"http://testserver/arxiv/cs.CL?date={D1}"
    assert client.get("/arxiv/cs.CL/feed?date=2026-03-05").status_code == 404
    for bad in ("yesterday", "0", "2026-13-01", "2026-03-02\x00"):
        r = client.get("/arxiv/cs.CL/feed", params={"date": bad})
        assert r.status_code == 400 and ("not a date" in r.text or "NUL" in r.text)


@pytest.fixture
def public_client(site_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    """A site at https://papers.example.org that answers any Host, so only the setting
    stands between a forged Host and the feed's links."""
    from app.db import store
    from app.db.engine import make_engine
    from app.main import create_app
    from tests.app.web.test_pages import seed_records

    settings = site_settings(PUBLIC_URL="https://papers.example.org/", ALLOWED_HOSTS="*")
    engine = make_engine(settings.database_url_resolved)
    with engine.begin() as conn:
        store.upsert_papers(conn, seed_records())
    engine.dispose()
    with TestClient(create_app(), headers={"Host": "evil.example"}) as c:
        yield c


@pytest.mark.parametrize(
    "url", ["/arxiv/cs.CL/feed?date=2026-03-03", "/search/feed?q=attention", "/venue/x/feed"]
)
def test_feed_links_come_from_public_url_not_host(public_client: TestClient, url: str) -> None:
    if url.startswith("/venue/"):
        from app.db import store

        with public_client.app.state.engine.begin() as conn:  # type: ignore[attr-defined]
            store.upsert_venue(conn, "x", [VenuePaperRecord("x", "p1", "No link", [])])
    r = public_client.get(url)
    assert r.status_code == 200, r.text
    assert "evil.example" not in r.text
    feed = feedparser.parse(r.content)
    assert feed.feed.id == f"https://papers.example.org{url}"
    hrefs = [link.href for link in feed.feed.links] + [
        link.href for e in feed.entries for link in e.links
    ]
    assert all(h.startswith(("https://papers.example.org/", "https://arxiv.org/")) for h in hrefs)
    assert any(h.startswith("https://papers.example.org/") for h in hrefs[1:])


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_client(
    request: pytest.FixtureRequest, site_settings: Callable[..., Settings]
) -> Iterator[TestClient]:
    """The site on each database, with the seed papers and one venue."""
    from app.db import store
    from app.db.engine import make_engine
    from app.main import create_app
    from tests.app.web.test_pages import seed_records

    env = {} if request.param == "sqlite" else {"DATABASE_URL": request.getfixturevalue("pg_url")}
    settings = site_settings(**env)
    engine = make_engine(settings.database_url_resolved)
    with engine.begin() as conn:
        store.upsert_papers(conn, seed_records())
        store.upsert_venue(conn, "x", [VenuePaperRecord("x", "p1", "A title", [])])
    engine.dispose()
    with TestClient(create_app()) as c:
        yield c


@pytest.mark.parametrize(
    "url",
    [
        "/venue/x%00y/feed",
        "/venue/x%02/feed",
        "/search/feed?q=attention%00",
        "/search/feed?q=%00%01",
        "/arxiv/cs.CL%00/feed",
        "/arxiv/cs.CL/feed?date=2026-03-03%00",
    ],
)
def test_forbidden_characters_in_feed_requests_are_no_server_error(
    any_db_client: TestClient, url: str
) -> None:
    r = any_db_client.get(url)
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        etree.fromstring(r.content)
        assert feedparser.parse(r.content).bozo == 0


def test_public_url_setting_is_checked() -> None:
    assert Settings(public_url=" https://papers.example.org/shelf/ ").public_url == (
        "https://papers.example.org/shelf"
    )
    assert Settings(public_url="").public_url is None
    for bad in ("papers.example.org", "ftp://papers.example.org", "https://x.org/?a=1", "/"):
        with pytest.raises(ValueError, match="public_url"):
            Settings(public_url=bad)
