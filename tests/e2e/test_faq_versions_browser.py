"""The FAQ page of a paper that has a new version, in Chromium: the older version's answer is
shown, marked stale, and the page's control has the new one written (streamed in place with
JavaScript; the form and the page's own reloads without). `papershelf serve` and
`papershelf worker --pool llm` as processes, the fake LLM, Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.artifacts import faqs
from app.artifacts.faqs import FaqKey
from app.db.engine import make_engine
from app.db.migrate import upgrade
from tests.app.web.test_faq_api import ID, seed
from tests.e2e.conftest import page_errors
from tests.e2e.test_faq_browser import site_with_llm
from tests.fakes.llm_server import FakeLLM

pytestmark = [pytest.mark.slow]
REPLY = "## 1. What problem does this paper try to solve?\nThe **v3** answer.\n"
NOTICE = "Written for v1; this paper is now v3."


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM(reply=REPLY, chunk_chars=6) as fake:
        yield fake


@pytest.fixture(scope="module")
def site(fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("faq-versions-site")
    url = f"sqlite:///{data_dir / 'papershelf.db'}"
    upgrade(url)
    seed(url, version=1)
    engine = make_engine(url)
    with engine.begin() as conn:
        for lang in faqs.LANGS:
            faqs.save_faq(
                conn,
                FaqKey(ID, 1, lang, "fake-model-1"),
                f"## 1. Old\nThe **v1** answer ({lang}).",
                prompt_hash="p",
                finish_reason="stop",
                now=datetime(2026, 5, 4, tzinfo=UTC),
            )
    engine.dispose()
    seed(url, version=3)
    with site_with_llm(data_dir, fake_llm) as base:
        yield base


def test_stale_faq_is_marked_and_written_again(
    browser: Any, site: str, fake_llm: FakeLLM, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-GB")
    try:
        page = ctx.new_page()
        errors = page_errors(page)
        page.goto(f"{site}/arxiv/{ID}/faq")
        page.wait_for_selector("html[data-js=ready]")
        section = page.locator("section.faq")
        expect(section.locator("[data-faq-stale]")).to_contain_text(NOTICE)
        expect(section.locator("[data-faq-body] strong").last).to_have_text("v1")
        page.screenshot(path=str(artifacts / "faq-stale.png"))

        section.get_by_role("button", name="Write the FAQ again for v3 (English)").click()
        expect(section.locator("[data-faq-status]")).to_contain_text(
            "Written by fake-model-1", timeout=20_000
        )
        expect(section.locator("[data-faq-stale]")).to_have_count(0)
        expect(section.locator("[data-faq-body] strong")).to_have_text("v3")
        page.screenshot(path=str(artifacts / "faq-rewritten.png"))
        assert not errors, errors
    finally:
        ctx.close()

    # Without JavaScript: the form, then the page reloads itself until the answer is there.
    ctx = browser.new_context(java_script_enabled=False, locale="en-GB")
    try:
        page = ctx.new_page()
        page.goto(f"{site}/arxiv/{ID}/faq?lang=zh")
        expect(page.locator("[data-faq-stale]")).to_contain_text(NOTICE)
        page.get_by_role("button", name="Write the FAQ again for v3").click()
        expect(page.locator("[data-faq-status]")).to_contain_text(
            "Written by fake-model-1", timeout=30_000
        )
        expect(page.locator("[data-faq-stale]")).to_have_count(0)
    finally:
        ctx.close()
    assert len(fake_llm.completions()) == 2
