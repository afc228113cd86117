"""Replacements in a real browser: `papershelf serve` over a small store where one paper was
replaced (v1 → v3); the diff opens from its collapsed summary, "Hide replacements" hides the
section in place and is remembered after a reload, and without JavaScript the same link asks
the server for the list without them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.db.engine import make_engine
from app.db.migrate import upgrade
from tests.app.web.test_versions import DAY, NEW, REPLACED, UNSEEN, seed_versions
from tests.e2e.conftest import ARTIFACTS, page_errors, serving

pytestmark = [pytest.mark.slow]

CARD = "article.paper[data-id]"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("versions-site")
    url = f"sqlite:///{data_dir / 'papershelf.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_versions(engine)
    engine.dispose()
    with serving(data_dir) as base:
        yield base


def visible_ids(page: Any) -> list[str]:
    return [
        str(i)
        for i in page.locator(CARD).evaluate_all(
            "els => els.filter(e => e.offsetParent !== null).map(e => e.dataset.id)"
        )
    ]


def test_the_toggle_hides_replacements_and_is_remembered(browser: Any, site: str) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        page = ctx.new_page()
        errors = page_errors(page)
        page.goto(f"{site}/arxiv/cs.CL?date={DAY}")
        page.wait_for_selector("html[data-js=ready]")
        assert set(visible_ids(page)) == {NEW, REPLACED, UNSEEN}

        changes = page.locator(f'{CARD}[data-id="{REPLACED}"] details.changes')
        diff = changes.locator("dl.diff")
        expect(diff).to_be_hidden()  # collapsed until asked for
        changes.locator("summary").click()
        expect(diff).to_be_visible()
        expect(diff.locator('dd[data-field="comments"] ins')).to_have_text(
            "; accepted at ICLR 2026"
        )
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "replacement-diff.png"
        page.locator(f'{CARD}[data-id="{REPLACED}"]').screenshot(path=str(shot))
        assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

        toggle = page.locator("a[data-replacements-toggle]")
        expect(toggle).to_have_text("Hide replacements")
        toggle.click()
        expect(page.locator("details.section#replace")).to_be_hidden()
        expect(toggle).to_have_text("Show replacements")
        assert visible_ids(page) == [NEW]
        assert "replacements=" not in page.url  # hidden in place, no navigation

        page.reload()
        page.wait_for_selector("html[data-js=ready]")
        expect(page.locator("details.section#replace")).to_be_hidden()
        assert visible_ids(page) == [NEW]
        page.screenshot(path=str(ARTIFACTS / "replacements-hidden.png"), full_page=True)

        page.locator("a[data-replacements-toggle]").click()
        assert set(visible_ids(page)) == {NEW, REPLACED, UNSEEN}
        page.reload()
        page.wait_for_selector("html[data-js=ready]")
        assert set(visible_ids(page)) == {NEW, REPLACED, UNSEEN}
        assert not errors, errors
    finally:
        ctx.close()


def test_without_javascript_the_toggle_is_a_link(browser: Any, site: str) -> None:
    ctx = browser.new_context(java_script_enabled=False)
    try:
        page = ctx.new_page()
        page.goto(f"{site}/arxiv/cs.CL?date={DAY}")
        page.locator("a[data-replacements-toggle]").click()
        page.wait_for_url("**replacements=hide**")
        assert visible_ids(page) == [NEW]
        # The next link takes the reader back with them.
        page.locator('a[data-replacements-toggle="show"]').click()
        page.wait_for_url("**replacements=show**")
        assert set(visible_ids(page)) == {NEW, REPLACED, UNSEEN}
    finally:
        ctx.close()
