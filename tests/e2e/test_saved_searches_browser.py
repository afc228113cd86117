"""Saved searches in a real browser: a search saved by name on /search is listed again after
a reload (localStorage), and its feed link opens an Atom feed of the matches, newest
announcement first. Without JavaScript the page still offers the feed link."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree

import pytest

from app.db import store
from app.db.engine import make_engine
from app.db.migrate import upgrade
from tests.app.test_alerts import record
from tests.e2e.conftest import ARTIFACTS, page_errors, serving

pytestmark = [pytest.mark.slow]
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("saved-search-site")
    url = f"sqlite:///{data_dir / 'papershelf.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        store.upsert_papers(
            conn,
            [
                record(1, "Diffusion models for graphs", ["cs.LG"]),
                record(2, "Diffusion transformers scale", ["cs.CV", "cs.LG"]),
                record(4, "Tokenizers for speech", ["cs.LG"]),
            ],
        )
    engine.dispose()
    with serving(data_dir) as base:
        yield base


def test_save_a_search_by_name_see_it_after_reload_and_open_its_feed(
    browser: Any, site: str
) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = ctx.new_page()
        errors = page_errors(page)
        page.goto(f"{site}/search?q=diffusion&category=cs.lg")
        page.wait_for_selector("html[data-js=ready]")
        section = page.locator("section[data-saved-searches]")
        expect(section).to_be_visible()
        expect(section.locator("[data-saved-empty]")).to_be_visible()
        form = section.locator("form[data-save-search]")
        form.locator('input[name="name"]').fill("Diffusion <b>watch</b>")
        form.locator('input[name="replacements"]').check()
        form.locator('button[type="submit"]').click()

        page.reload()
        page.wait_for_selector("html[data-js=ready]")
        saved = section.locator("li[data-saved]")
        expect(saved).to_have_count(1)
        # The name is text, never markup.
        expect(saved.locator("a.saved-search")).to_have_text("Diffusion <b>watch</b>")
        expect(saved.locator("b")).to_have_count(0)
        feed = saved.locator("a[data-saved-feed]").get_attribute("href")
        assert feed == "/search/feed?q=diffusion&category=cs.LG&replacements=1"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "saved-searches.png"), full_page=True)

        # The saved search's own link runs the search again.
        saved.locator("a.saved-search").click()
        page.wait_for_url("**/search?q=diffusion&category=cs.LG**")

        response = page.goto(site + feed)
        assert response is not None and response.status == 200
        assert response.headers["content-type"].startswith("application/atom+xml")
        root = ElementTree.fromstring(response.body())
        ids = [e.findtext(f"{ATOM}id") for e in root.findall(f"{ATOM}entry")]
        assert ids == ["https://arxiv.org/abs/2607.00002", "https://arxiv.org/abs/2607.00001"]
        self_link = root.find(f"{ATOM}link[@rel='self']")
        assert self_link is not None and self_link.get("href") == site + feed
        assert not errors, errors

        page.goto(f"{site}/search?q=tokenizers")
        page.wait_for_selector("html[data-js=ready]")
        section.locator("button[data-saved-remove]").click()
        expect(section.locator("li[data-saved]")).to_have_count(0)
    finally:
        ctx.close()


def test_without_javascript_the_feed_link_remains(browser: Any, site: str) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(java_script_enabled=False)
    try:
        page = ctx.new_page()
        page.goto(f"{site}/search?q=diffusion&category=cs.LG")
        expect(page.locator("section[data-saved-searches]")).to_be_hidden()
        link = page.get_by_role("link", name="Atom feed of this search")
        assert link.get_attribute("href") == "/search/feed?q=diffusion&category=cs.LG"
    finally:
        ctx.close()
