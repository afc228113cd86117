"""The "for you" listing sort: the page and the JSON API, their caching (one reader's answer
is never shared) and their errors (4xx, never 5xx)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from app.db.engine import make_engine
from app.foryou import MAX_STARRED
from app.settings import Settings
from tests.app.test_foryou import (
    DAY,
    FOR_YOU_ORDER,
    NEAREST,
    NO_VECTOR,
    PLAIN_ORDER,
    STAR_A,
    STAR_B,
    seed_for_you,
)
from tests.app.web.test_pages import assert_html, site_app

URL = "/arxiv/cs.CL"
STARRED = f"{STAR_A},{STAR_B}"


@pytest.fixture
def client(site_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    engine = make_engine(site_settings().database_url_resolved)
    with engine.begin() as conn:
        seed_for_you(conn)
    engine.dispose()
    with TestClient(site_app()) as c:
        yield c


def card_ids(page: str) -> list[str]:
    return re.findall(r'<article class="paper" id="([^"]+)"', page)


def test_for_you_ranks_by_the_stars_sent(client: TestClient) -> None:
    r = client.get(URL, params={"sort": "foryou", "starred": STARRED, "date": str(DAY)})
    page = assert_html(r)
    assert card_ids(page) == [*FOR_YOU_ORDER, NO_VECTOR]
    assert r.headers["cache-control"] == "private, no-store"
    assert "etag" not in r.headers
    # Each ranked card names its nearest star, linked and escaped.
    card = page[page.index('id="2603.00206"') : page.index('id="2603.00203"')]
    escaped = "Quokkas &amp; &lt;wombats&gt; in the wild"
    assert f'because you starred <a href="/arxiv/{STAR_A}">{escaped}</a>' in card
    for arxiv_id, star in NEAREST.items():
        assert re.search(rf'id="{arxiv_id}".*?data-because="{star}"', page, re.DOTALL)
    unranked = page[page.index(f'id="{NO_VECTOR}"') :]
    assert "because you starred" not in unranked.split("</article>")[0]
    assert "Ranked by similarity to the nearest of your 2 starred papers" in page
    assert "1 paper without an embedding yet follows in announcement order" in page
    assert '<option value="foryou" selected>' in page


def test_ignored_stars_are_counted(client: TestClient) -> None:
    page = assert_html(
        client.get(URL, params={"sort": "foryou", "starred": f"{STAR_A},2501.99999,{NO_VECTOR}"})
    )
    assert card_ids(page)[:2] == ["2603.00206", "2603.00202"]
    assert "your 1 starred paper." in page
    assert "1 starred paper not stored here was ignored" in page
    assert "1 starred paper without an embedding was ignored" in page


def test_stars_without_embeddings_leave_the_plain_order(client: TestClient) -> None:
    r = client.get(URL, params={"sort": "foryou", "starred": f"{NO_VECTOR},2501.99999"})
    page = assert_html(r)
    assert card_ids(page) == PLAIN_ORDER and "because you starred" not in page
    assert "None of your starred papers has an embedding on this shelf yet" in page
    assert r.headers["cache-control"] == "private, no-store"


def test_without_stars_it_is_the_plain_order_with_a_hint(client: TestClient) -> None:
    plain = client.get(URL)
    for params in ({"sort": "foryou"}, {"sort": "foryou", "starred": " , "}):
        r = client.get(URL, params=params)
        page = assert_html(r)
        assert card_ids(page) == PLAIN_ORDER == card_ids(plain.text)
        assert "<noscript>" in page and "needs JavaScript" in page
        assert "data-foryou-hint hidden" in page  # shown by the script when nothing is starred
        assert "because you starred" not in page
        # Nothing personal in it: cached and validated like the plain listing, apart from it.
        assert r.headers["cache-control"] == plain.headers["cache-control"] == "public, max-age=60"
        assert r.headers["etag"] != plain.headers["etag"]
        again = client.get(URL, params=params, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304


def test_personal_pages_never_enter_the_page_cache(client: TestClient) -> None:
    cache = client.app.state.page_cache  # type: ignore[attr-defined]
    client.get(URL)
    kept = dict(cache._pages)
    for _ in range(2):
        r = client.get(URL, params={"sort": "foryou", "starred": STARRED})
        assert card_ids(r.text)[0] == "2603.00206"
    assert cache._pages == kept
    # Other sorts ignore `starred`: the plain page, from the cache.
    plain = client.get(URL, params={"starred": STARRED})
    assert plain.headers["cache-control"] == "public, max-age=60"
    assert card_ids(plain.text) == PLAIN_ORDER


@pytest.mark.parametrize(
    ("starred", "message"),
    [
        ("2501.01234,nonsense", "not an arXiv id: &#39;nonsense&#39;"),
        ("2513.00001", "month 13 does not exist"),
        (",".join(f"2501.{i:05d}" for i in range(1, MAX_STARRED + 2)), f"at most {MAX_STARRED}"),
        ("<script>alert(1)</script>", "&lt;script&gt;"),
    ],
)
def test_bad_starred_ids_are_a_400_page(client: TestClient, starred: str, message: str) -> None:
    page = assert_html(client.get(URL, params={"sort": "foryou", "starred": starred}), 400)
    assert "Bad starred papers" in page and message in page


def test_unknown_sort_still_400(client: TestClient) -> None:
    page = assert_html(client.get(URL, params={"sort": "random"}), 400)
    assert "sort must be one of order, popularity, keywords, foryou" in page


# --- the JSON API ---------------------------------------------------------------------


def test_api_for_you(client: TestClient) -> None:
    r = client.get(
        "/api/v1/listings/cs.CL",
        params={"sort": "foryou", "starred": f"{STARRED},2501.99999", "date": str(DAY)},
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "private, no-store" and "etag" not in r.headers
    body = r.json()
    assert body["sort"] == "foryou" and body["summary"] == "6 papers, 6 new"
    assert [(s["key"], [p["arxiv_id"] for p in s["papers"]]) for s in body["sections"]] == [
        ("foryou", FOR_YOU_ORDER),
        ("unranked", [NO_VECTOR]),
    ]
    fy = body["for_you"]
    assert (fy["starred"], fy["stars_used"], fy["unranked"]) == (3, 2, 1)
    assert fy["unknown"] == ["2501.99999"] and fy["without_vector"] == []
    assert [m["arxiv_id"] for m in fy["ranked"]] == FOR_YOU_ORDER
    first = fy["ranked"][0]
    assert first["nearest_starred"] == STAR_A and first["nearest_title"].startswith("Quokkas &")
    assert 0.99 < first["score"] <= 1.0


def test_api_plain_listing_unchanged_and_bad_stars_400(client: TestClient) -> None:
    plain = client.get("/api/v1/listings/cs.CL", params={"starred": STARRED})
    assert plain.headers["cache-control"] == "public, max-age=60"
    assert "for_you" not in plain.json()
    nothing = client.get("/api/v1/listings/cs.CL", params={"sort": "foryou"}).json()
    assert nothing["for_you"]["starred"] == 0 and nothing["for_you"]["ranked"] == []
    assert [p["arxiv_id"] for s in nothing["sections"] for p in s["papers"]] == PLAIN_ORDER
    bad = client.get("/api/v1/listings/cs.CL", params={"sort": "foryou", "starred": "2513.00001"})
    assert bad.status_code == 400
    assert "month 13" in bad.json()["error"]["message"]
    too_long = client.get(
        "/api/v1/listings/cs.CL", params={"sort": "foryou", "starred": "2501.00001," * 2000}
    )
    assert too_long.status_code == 422
