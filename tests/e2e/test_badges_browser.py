"""Badges in a real browser: `papershelf serve` over a small store, Chromium showing a card with
code, data and venue badges (the venue's page linked), LaTeX macros rendered, and the "Has
code" filter of the day listing, with JavaScript on and off."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.db import store
from app.db.engine import make_engine
from app.db.migrate import upgrade
from app.ingest.records import VenuePaperRecord
from tests.app.web.test_badges import DAY, PAPERS
from tests.e2e.conftest import ARTIFACTS, CARD, card_ids, page_errors, serving

pytestmark = [pytest.mark.slow]

# Screenshots also go here when set (for a reviewer), besides tests/e2e/artifacts.


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("badges-site")
    url = f"sqlite:///{data_dir / 'papershelf.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        store.upsert_papers(conn, PAPERS)
        store.upsert_venue(
            conn,
            "iclr2026",
            [
                VenuePaperRecord(
                    venue="iclr2026",
                    venue_paper_id="x1",
                    # Titles are matched by their normalised key: the same text.
                    title=PAPERS[0].title,
                    authors=["Ada Lovelace"],
                )
            ],
        )
        store.link_venues(conn)
    engine.dispose()
    with serving(data_dir) as base:
        yield base


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_badges_and_the_has_code_filter(browser: Any, site: str) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        page = ctx.new_page()
        errors = page_errors(page)
        page.goto(f"{site}/arxiv/cs.CL?date={DAY}")
        page.wait_for_selector("html[data-js=ready]")
        assert card_ids(page) == ["2603.00001", "2603.00002", "2603.00003"]
        first = page.locator(f'{CARD}[data-id="2603.00001"]')
        code = first.locator("a.badge-code")
        expect(code).to_have_text("GitHub")
        expect(code).to_be_visible()
        assert code.get_attribute("href") == "https://github.com/ada/sparse"
        expect(first.locator("a.badge-dataset")).to_have_text("HF dataset")
        venue = first.locator("[data-venue]")
        expect(venue).to_have_text("ICLR 2026 Oral")
        # LaTeX macros are rendered, not shown raw.
        expect(first.locator("h3.title em")).to_have_text("Sparse")
        expect(first.locator(".abstract")).not_to_contain_text("\\cite")
        # A venue we do not hold is a badge without a link.
        other = page.locator(f'{CARD}[data-id="2603.00002"] [data-venue]')
        expect(other).to_have_text("NeurIPS 2025")
        assert other.evaluate("e => e.tagName") == "SPAN"
        screenshot(page, "badges.png")

        # The filter: tick "Has code", apply.
        page.locator("input[data-has-code]").check()
        page.locator("form.sort button[type=submit]").click()
        page.wait_for_url("**has_code=1**")
        assert card_ids(page) == ["2603.00001"]
        expect(page.locator("p.summary")).to_contain_text("only papers with code")
        expect(page.locator("input[data-has-code]")).to_be_checked()
        screenshot(page, "badges-has-code.png")

        # The venue badge leads to the venue's page, which links the arXiv version back.
        page.goto(f"{site}/arxiv/cs.CL?date={DAY}")
        page.locator(f'{CARD}[data-id="2603.00001"] a[data-venue]').click()
        page.wait_for_url("**/venue/iclr2026")
        expect(page.locator('a[href="/arxiv/2603.00001"]')).to_be_visible()
        assert not errors, errors
    finally:
        ctx.close()


def test_the_filter_works_without_javascript(browser: Any, site: str) -> None:
    ctx = browser.new_context(java_script_enabled=False)
    try:
        page = ctx.new_page()
        page.goto(f"{site}/arxiv/cs.CL?date={DAY}")
        page.locator("input[data-has-code]").check()
        page.locator("form.sort button[type=submit]").click()
        page.wait_for_url("**has_code=1**")
        assert card_ids(page) == ["2603.00001"]
    finally:
        ctx.close()
