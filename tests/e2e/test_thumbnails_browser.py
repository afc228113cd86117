"""A day listing with thumbnails on, both kinds, in Chromium: the first paper's PDF (served
by the fake arXiv) becomes its first-page picture (FSQ tokens decoded), the second, whose
PDF is missing, gets a placeholder from the plots diffusion model. REAL tiny checkpoints,
made by the ML pool's own back-fill (`thumbnails_inline`), served by `papershelf serve`.
Both images load; the first page is described for screen readers, the placeholder is
decoration (empty alt, role presentation). The screenshot goes to tests/e2e/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from app.db.engine import make_engine
from app.db.migrate import upgrade
from tests.e2e.conftest import page_errors, serving
from tests.fakes.arxiv_server import FakeArxiv

pytestmark = [pytest.mark.slow]
DAY = "2026-07-01"
PDF_ID, PLACEHOLDER_ID = "2607.00001", "2607.00002"


@pytest.fixture(scope="module")
def site(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("torch")
    from bench.thumbnails import figures, synthetic_pdf
    from tests.workers.test_ml_pictures import build_tiny_models, make_settings, rec, seed
    from workers.ml.pictures import thumbnails_inline

    models = build_tiny_models(
        tmp_path_factory.getbasetemp() / "tiny-picture-models", shared_data / "images"
    )
    data_dir = tmp_path_factory.mktemp("thumbnails-site")
    url = f"sqlite:///{data_dir / 'papershelf.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed(engine, [rec(1), rec(2)])
    (figure,) = figures(shared_data, 1)
    with FakeArxiv() as fake:
        fake.pdfs[PDF_ID] = synthetic_pdf(figure, 1)  # the other paper's PDF is a 404
        settings = make_settings(
            engine, data_dir, "redis://unused", models, thumbnail_pdf_url=fake.pdf_url
        )
        # In a thread of its own: Playwright's loop may already run in this one.
        with ThreadPoolExecutor(1) as thread:
            done = thread.submit(thumbnails_inline, settings, engine).result()
    engine.dispose()
    assert done["written"] == 2, done
    with serving(data_dir) as base:
        yield base


def test_a_day_listing_shows_both_kinds(site: str, browser: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport={"width": 1000, "height": 900}, locale="en-GB")
    try:
        page = ctx.new_page()
        errors = page_errors(page)
        page.goto(f"{site}/arxiv/cs.CV?date={DAY}")
        pdf = page.locator(f'article.paper[id="{PDF_ID}"] img.thumb')
        placeholder = page.locator(f'article.paper[id="{PLACEHOLDER_ID}"] img.thumb')
        expect(pdf).to_have_attribute("data-source", "pdf")
        expect(placeholder).to_have_attribute("data-source", "generated")
        for img in (pdf, placeholder):
            img.scroll_into_view_if_needed()
            page.wait_for_function(
                "el => el.complete && el.naturalWidth === 64 && el.naturalHeight === 64",
                arg=img.element_handle(),
            )
        # The first page is content, named for screen readers; the placeholder is decoration.
        expect(pdf).to_have_attribute("alt", "First page of the paper")
        expect(page.get_by_role("img", name="First page of the paper")).to_have_count(1)
        expect(placeholder).to_have_attribute("alt", "")
        expect(placeholder).to_have_attribute("role", "presentation")
        # Each is its own picture, served with its source.
        sources = [
            page.request.get(site + img.get_attribute("src")).headers["x-thumbnail-source"]
            for img in (pdf, placeholder)
        ]
        assert sources == ["pdf", "generated"]
        page.evaluate("window.scrollTo(0, 0)")
        shot = artifacts / "thumbnails-listing.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes().startswith(b"\x89PNG")
        assert not errors, errors
    finally:
        ctx.close()
