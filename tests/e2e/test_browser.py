"""End to end in a real browser: the reader tools (static/papershelf.js) on a real server
over the real sample. Screenshots land in tests/e2e/artifacts/ for review."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

ATOM = "{http://www.w3.org/2005/Atom}"
CARD = "article.paper[data-id]"


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    yield ctx
    ctx.close()


def open_page(ctx: Any, url: str) -> tuple[Any, list[str]]:
    """A page with console errors and uncaught exceptions recorded (a CSP violation or a
    script error shows up there)."""
    page = ctx.new_page()
    errors: list[str] = []

    def on_console(m: Any) -> None:
        # Resource errors are reported by URL below (the console line names none).
        if m.type == "error" and not m.text.startswith("Failed to load resource"):
            errors.append(m.text)

    def on_response(r: Any) -> None:
        # The browser's own favicon probe is not a page's doing.
        if r.status >= 400 and not r.url.endswith("/favicon.ico"):
            errors.append(f"{r.status} {r.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", on_response)
    page.goto(url)
    page.wait_for_selector("html[data-js=ready]")
    return page, errors


def ids_of_focus(page: Any) -> str | None:
    return page.evaluate("document.activeElement && document.activeElement.dataset.id || null")


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def test_listing_stars_export_filter_keys_theme(
    context: Any, browser: Any, base_url: str, artifacts: Path
) -> None:
    page, errors = open_page(context, base_url + "/arxiv/cs.CL")
    first_day = page.locator("nav.days strong").inner_text()
    # Step back a day with the previous-day link.
    page.locator('nav.days a[rel="prev"]').click()
    page.wait_for_selector("html[data-js=ready]")
    assert "date=" in page.url
    assert page.locator("nav.days strong").inner_text() != first_day
    total = page.locator(CARD).count()
    assert total > 10
    page.screenshot(path=str(artifacts / "listing.png"))

    # Star two papers with the buttons.
    cards = page.locator(CARD)
    starred = [cards.nth(0).get_attribute("data-id"), cards.nth(2).get_attribute("data-id")]
    for i in (0, 2):
        cards.nth(i).locator("[data-ps-star]").click()
        assert cards.nth(i).locator("[data-ps-star]").get_attribute("aria-pressed") == "true"
    stored = page.evaluate("Object.keys(JSON.parse(localStorage['papershelf.stars']))")
    assert sorted(stored) == sorted(starred)

    # The export link restores both stars in a fresh profile.
    page.goto(base_url + "/starred")
    page.wait_for_selector("[data-starred][data-loaded]")
    assert page.locator(f"[data-starred-list] {CARD}").count() == 2
    link = page.locator("[data-starred-link]").input_value()
    page.screenshot(path=str(artifacts / "starred.png"))
    assert "/starred#import=" in link
    fresh = browser.new_context()
    try:
        other, other_errors = open_page(fresh, link)
        other.wait_for_selector("[data-starred][data-loaded]")
        restored = other.evaluate("Object.keys(JSON.parse(localStorage['papershelf.stars']))")
        assert sorted(restored) == sorted(starred)
        shown = other.locator(f"[data-starred-list] {CARD}").evaluate_all(
            "cs => cs.map(c => c.dataset.id)"
        )
        assert sorted(shown) == sorted(starred)
        assert "Imported 2 new stars" in other.locator("[data-starred-status]").inner_text()
        assert "#import" not in other.url  # the hash is dropped once imported
        assert not other_errors, other_errors
    finally:
        fresh.close()
    # And so does the downloaded JSON file, imported with the file picker.
    with page.expect_download() as download:
        page.locator("[data-starred-download]").click()
    exported = Path(download.value.path())
    assert sorted(json.loads(exported.read_text())["stars"]) == sorted(starred)
    fresh = browser.new_context()
    try:
        other, other_errors = open_page(fresh, base_url + "/starred")
        other.wait_for_selector("[data-starred][data-loaded]")
        assert other.locator(CARD).count() == 0
        other.locator("[data-starred-import]").set_input_files(str(exported))
        expect(other.locator(CARD)).to_have_count(2)
        assert "Imported 2 new stars" in other.locator("[data-starred-status]").inner_text()
        assert not other_errors, other_errors
    finally:
        fresh.close()
    page.go_back()
    page.wait_for_selector("html[data-js=ready]")

    # Ctrl+F opens the filter bar; a keyword hides the rest and is highlighted.
    page.keyboard.press("Control+f")
    bar_input = page.locator("[data-ps-filter-input]")
    assert bar_input.is_visible()
    assert page.evaluate("document.activeElement.hasAttribute('data-ps-filter-input')")
    bar_input.fill("language")
    count = page.locator("[data-ps-count]").inner_text()
    m = re.fullmatch(r"(\d+) of (\d+) shown", count)
    assert m, count
    assert 0 < int(m.group(1)) < int(m.group(2)) == total
    assert page.locator(f"{CARD}:visible").count() == int(m.group(1))
    assert page.locator("mark.ps-hl:visible").count() >= int(m.group(1))
    # Exclusion and OR.
    bar_input.fill("language -model")
    fewer = int(page.locator("[data-ps-count]").inner_text().split()[0])
    assert fewer < int(m.group(1))
    page.screenshot(path=str(artifacts / "listing-filtered.png"))
    page.keyboard.press("Escape")
    assert not bar_input.is_visible()
    assert page.locator(f"{CARD}:visible").count() == total
    assert page.locator("mark.ps-hl").count() == 0

    # j/k move the focus between papers; x marks the current one read.
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("j")
    first = ids_of_focus(page)
    page.keyboard.press("j")
    second = ids_of_focus(page)
    assert first and second and first != second
    page.keyboard.press("k")
    assert ids_of_focus(page) == first
    page.keyboard.press("x")
    assert page.locator(f'{CARD}[data-id="{first}"]').get_attribute("class").count("ps-read")
    hide_read = page.locator("[data-ps-hide-read]")
    hide_read.click()
    assert hide_read.get_attribute("aria-pressed") == "true"
    assert page.locator(f"{CARD}:visible").count() == total - 1
    hide_read.click()
    assert page.locator(f"{CARD}:visible").count() == total
    page.keyboard.press("?")
    assert page.locator(".ps-overlay").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator(".ps-overlay").is_visible()

    # The theme switch sets data-theme, which outlives a reload.
    assert page.evaluate("document.documentElement.getAttribute('data-theme')") is None
    light_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.locator("[data-ps-theme]").click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != light_bg
    page.reload()
    page.wait_for_selector("html[data-js=ready]")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.screenshot(path=str(artifacts / "listing-dark.png"))
    assert not errors, errors


def test_search_a_sentence_by_mode(context: Any, base_url: str, artifacts: Path) -> None:
    """A reader describes a paper in a sentence (no operators): results come back, ranked,
    and the mode the page used is shown and can be picked."""
    page, errors = open_page(
        context,
        base_url + "/search?q=" + quote("a benchmark for evaluating large language model agents"),
    )
    assert page.locator(CARD).count() > 0
    expect(page.locator(".search-mode")).to_have_text("keyword")  # no embeddings here
    page.select_option('select[name="mode"]', "semantic")
    page.locator("form.search button[type=submit]").click()
    page.wait_for_url(re.compile(r"mode=semantic"))
    # No embeddings in this store: keyword results, and the page says why.
    expect(page.locator("p.notice")).to_contain_text("no paper has an embedding")
    assert page.locator(CARD).count() > 0
    page.screenshot(path=str(artifacts / "search-mode.png"))
    assert not errors, errors


def test_search_paper_page_copy_and_feed(context: Any, base_url: str, artifacts: Path) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    page, errors = open_page(context, base_url + "/")
    page.keyboard.press("/")
    box = page.locator('header .topsearch input[name="q"]')
    assert page.evaluate("document.activeElement.name") == "q"
    box.fill("diffusion language model")
    box.press("Enter")
    page.wait_for_url(re.compile(r"/search\?q="))
    page.wait_for_selector("html[data-js=ready]")
    assert page.locator(CARD).count() > 0
    page.screenshot(path=str(artifacts / "search.png"))
    title = page.locator(f"{CARD} .title a").first
    href = title.get_attribute("href")
    title.click()
    page.wait_for_url(re.compile(re.escape(href) + "$"))
    page.wait_for_selector("html[data-js=ready]")
    card = page.locator(CARD)
    assert card.count() == 1
    page.screenshot(path=str(artifacts / "paper.png"))
    card.locator("[data-ps-copy]").click()
    # (No wait_for_function: its string is eval'd in the page, which the CSP forbids.)
    expect(card.locator("[data-ps-copy]")).to_have_text("[Copied]")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert f"https://arxiv.org/abs/{href.rsplit('/', 1)[-1]}" in copied
    assert card.locator(".title").inner_text().split()[0] in copied
    assert not errors, errors

    feed = page.request.get(base_url + "/arxiv/cs.CL/feed")
    assert feed.ok
    root = ET.fromstring(feed.body())
    assert root.tag == ATOM + "feed"
    assert len(root.findall(ATOM + "entry")) > 0


def test_pages_work_without_javascript(browser: Any, base_url: str) -> None:
    ctx = browser.new_context(java_script_enabled=False)
    try:
        page = ctx.new_page()
        page.goto(base_url + "/arxiv/cs.CL")
        assert page.locator(CARD).count() > 10
        assert page.locator(".ps-btn, .ps-tools, .ps-filter").count() == 0
        assert page.locator("html[data-js]").count() == 0
        page.locator('nav.days a[rel="prev"]').click()
        assert "date=" in page.url
        page.goto(base_url + "/starred")
        assert page.locator("[data-starred]").is_hidden()
        # (Playwright only stops scripts from running, so Chromium still parses <noscript>
        # as if scripting were on: check the notice in the HTML, not on screen.)
        assert "page needs JavaScript" in " ".join(page.content().split())
    finally:
        ctx.close()


def test_preference_keywords_are_remembered(context: Any, base_url: str) -> None:
    page, errors = open_page(context, f"{base_url}/arxiv/cs.CL")
    page.fill('form.sort input[name="kw"]', "diffusion, agents")
    page.select_option('form.sort select[name="sort"]', "keywords")
    with page.expect_navigation():
        page.click('form.sort button[type="submit"], form.sort input[type="submit"]')
    other, more = open_page(context, f"{base_url}/arxiv/cs.CV")
    expect(other.locator('form.sort input[name="kw"]')).to_have_value("diffusion, agents")
    assert errors == [] and more == []
