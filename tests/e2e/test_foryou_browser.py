"""The "for you" sort in a real browser: `papershelf serve` over a small store with
embeddings written directly (no model), Chromium starring papers on one day and ranking the
next by them; and the same listing with JavaScript off, which keeps the plain order."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from app.db.engine import make_engine
from app.db.migrate import upgrade
from tests.app.test_foryou import (
    DAY,
    FOR_YOU_ORDER,
    NEAREST,
    NO_VECTOR,
    PLAIN_ORDER,
    STAR_A,
    STAR_A_TITLE,
    STAR_B,
    STAR_DAY,
    seed_for_you,
)
from tests.e2e.conftest import ARTIFACTS, CARD, card_ids, page_errors, serving

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("foryou-site")
    url = f"sqlite:///{data_dir / 'papershelf.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        seed_for_you(conn)
    engine.dispose()
    with serving(data_dir) as base:
        yield base


def test_for_you_ranks_the_day_by_stars_made_in_the_page(browser: Any, site: str) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = ctx.new_page()
        errors = page_errors(page)
        page.goto(f"{site}/arxiv/cs.CL?date={STAR_DAY}")
        page.wait_for_selector("html[data-js=ready]")
        for arxiv_id in (STAR_A, STAR_B):
            page.locator(f'{CARD}[data-id="{arxiv_id}"] [data-ps-star]').click()
            card = page.locator(f'{CARD}[data-id="{arxiv_id}"]')
            expect(card).to_have_class(re.compile(r"\bps-starred\b"))
        page.locator('nav.days a[rel="next"]').click()
        page.wait_for_selector("html[data-js=ready]")
        assert card_ids(page) == PLAIN_ORDER

        page.locator('form.sort select[name="sort"]').select_option("foryou")
        page.locator('form.sort button[type="submit"]').click()
        page.wait_for_url("**starred=**")
        page.wait_for_selector("html[data-js=ready]")
        assert card_ids(page) == [*FOR_YOU_ORDER, NO_VECTOR]
        for arxiv_id, star in NEAREST.items():
            because = page.locator(f'{CARD}[data-id="{arxiv_id}"] .because')
            expect(because.locator("a")).to_have_attribute("href", f"/arxiv/{star}")
        top = page.locator(f'{CARD}[data-id="{FOR_YOU_ORDER[0]}"] .because')
        expect(top).to_have_text(f"because you starred {STAR_A_TITLE}")
        expect(page.locator(f'{CARD}[data-id="{NO_VECTOR}"] .because')).to_have_count(0)
        expect(page.locator("[data-foryou-note]")).to_contain_text(
            "1 paper without an embedding yet follows"
        )
        # The previous day's link keeps the sort and the stars.
        prev = page.locator('nav.days a[rel="prev"]').get_attribute("href") or ""
        assert "sort=foryou" in prev and STAR_A in prev and STAR_B in prev

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "foryou.png"
        page.screenshot(path=str(shot), full_page=True)
        data = shot.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000

        # A bookmark without the stars is asked again with them.
        page.goto(f"{site}/arxiv/cs.CL?date={DAY}&sort=foryou")
        page.wait_for_url("**starred=**")
        page.wait_for_selector("html[data-js=ready]")
        assert card_ids(page)[0] == FOR_YOU_ORDER[0]
        assert not errors, errors
    finally:
        ctx.close()


def test_for_you_without_javascript_is_the_plain_order(browser: Any, site: str) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(java_script_enabled=False)
    try:
        page = ctx.new_page()
        page.goto(f"{site}/arxiv/cs.CL?date={DAY}")
        assert card_ids(page) == PLAIN_ORDER
        page.locator('form.sort select[name="sort"]').select_option("foryou")
        page.locator('form.sort button[type="submit"]').click()
        page.wait_for_url("**sort=foryou**")
        assert "starred=" not in page.url
        assert card_ids(page) == PLAIN_ORDER
        # (Playwright only stops scripts from running, so Chromium still parses <noscript>
        # as if scripting were on: check the note in the HTML, not on screen.)
        assert "so it needs JavaScript" in " ".join(page.content().split())
        expect(page.locator("[data-foryou-hint]")).to_be_hidden()
        expect(page.locator(".because")).to_have_count(0)
    finally:
        ctx.close()
