"""The [FAQ] button in a real browser: `papershelf serve` and `papershelf worker --pool llm`
as processes, a fake OpenAI-compatible server, Redis, Chromium. The answer streams into the
card (EventSource under the site's CSP: no inline script), is drawn as text, and is cached."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from app.db.migrate import upgrade
from tests.app.web.test_faq_api import ID, seed
from tests.e2e.conftest import REDIS_URL, _free_port, answers, page_errors, redis_queue, running
from tests.fakes.llm_server import FakeLLM

pytestmark = [pytest.mark.slow]
REPLY = (
    "## 1. What problem does this paper try to solve?\n"
    "It studies **tokenizers**. <img src=x onerror=alert(1)> stays text.\n\n"
    "## 2. What related work is there?\n"
    "- Byte-pair encoding\n- Unigram models\n"
)


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM(reply=REPLY, chunk_chars=6) as fake:
        yield fake


@pytest.fixture(scope="module")
def site(fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("faq-site")
    url = f"sqlite:///{data_dir / 'papershelf.db'}"
    upgrade(url)
    seed(url, version=1)
    with site_with_llm(data_dir, fake_llm) as base:
        yield base


@contextmanager
def site_with_llm(data_dir: Path, fake_llm: FakeLLM) -> Iterator[str]:
    """`papershelf serve` and an LLM worker (the fake LLM, model fake-model-1, a queue of its
    own) over the store in `data_dir`; yields the site's base URL."""
    with redis_queue("llm") as queue:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERSHELF_")}
        env.update(
            PAPERSHELF_DATA_DIR=str(data_dir),
            PAPERSHELF_REDIS_URL=REDIS_URL,
            PAPERSHELF_LLM_BASE_URL=fake_llm.base_url,
            PAPERSHELF_LLM_MODEL="fake-model-1",
            PAPERSHELF_LLM_QUEUE=queue,
        )
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        with running(
            [["serve", "--port", str(port), "--no-migrate"], ["worker", "--pool", "llm"]],
            env,
            data_dir / "processes.log",
            answers(base + "/healthz"),
            what="the site",
        ):
            yield base


def test_faq_streams_into_the_card_and_is_cached(
    browser: Any, site: str, fake_llm: FakeLLM, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-GB")
    try:
        page = ctx.new_page()
        errors = page_errors(page)
        page.goto(f"{site}/arxiv/{ID}")
        page.wait_for_selector("html[data-js=ready]")
        page.locator("a[data-ps-faq]").first.click()
        panel = page.locator("article.paper section.ps-faq")
        status = panel.locator("[data-faq-status]")
        expect(status).to_contain_text("Written by fake-model-1", timeout=20_000)
        body = panel.locator("[data-faq-body]")
        expect(body.locator("h3")).to_have_text(
            ["1. What problem does this paper try to solve?", "2. What related work is there?"]
        )
        expect(body.locator("strong")).to_have_text("tokenizers")
        expect(body.locator("li")).to_have_count(2)
        assert body.locator("img").count() == 0  # the model's markup is text, not HTML
        assert "<img src=x onerror=alert(1)>" in body.inner_text()
        page.screenshot(path=str(artifacts / "faq-card.png"))
        assert len(fake_llm.completions()) == 1

        # Chinese is a separate answer; the choice is remembered.
        panel.locator('[data-faq-lang="zh"]').click()
        expect(status).to_contain_text("Written by", timeout=20_000)
        assert len(fake_llm.completions()) == 2
        assert page.evaluate("localStorage['papershelf.faqLang']") == '"zh"'

        # Closed and opened again: straight from the cache, no new generation.
        page.locator("a[data-ps-faq]").first.click()
        expect(panel).to_have_count(0)
        page.locator("a[data-ps-faq]").first.click()
        expect(panel.locator("[data-faq-status]")).to_contain_text("Written by", timeout=10_000)
        assert len(fake_llm.completions()) == 2

        # The FAQ page, rendered on the server.
        page.goto(f"{site}/arxiv/{ID}/faq")
        expect(page.locator("section.faq h3").first).to_have_text(
            "1. What problem does this paper try to solve?"
        )
        assert not errors, errors
    finally:
        ctx.close()
