"""Exports in a real browser: the export links of a day listing and of the starred page
download files that real parsers read. Screenshots land in tests/e2e/artifacts/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bibtexparser
import jsonschema
import pytest
import rispy

from tests.e2e.test_browser import CARD, open_page

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

CSL_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "csl" / "csl-data.json").read_text()
)


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    yield ctx
    ctx.close()


def download(page: Any, link: Any) -> tuple[str, str]:
    """Click `link`; the downloaded file's suggested name and text."""
    with page.expect_download() as info:
        link.click()
    got = info.value
    return got.suggested_filename, Path(got.path()).read_text(encoding="utf-8")


def test_day_listing_exports_download_and_parse(
    context: Any, base_url: str, artifacts: Path
) -> None:
    page, errors = open_page(context, base_url + "/arxiv/cs.CL")
    shown = {c.get_attribute("data-id") for c in page.locator(CARD).all()}
    assert shown
    exports = page.locator("nav.days [data-export]")
    page.screenshot(path=str(artifacts / "export-day-listing.png"))
    name, text = download(page, exports.get_by_role("link", name="BibTeX"))
    assert name.startswith("papershelf-cs.CL-") and name.endswith(".bib")
    library = bibtexparser.parse_string(text)
    assert not library.failed_blocks
    assert {e["eprint"] for e in library.entries} == shown
    name, text = download(page, exports.get_by_role("link", name="RIS"))
    assert name.endswith(".ris")
    assert {r["accession_number"] for r in rispy.loads(text)} == {f"arXiv:{i}" for i in shown}
    name, text = download(page, exports.get_by_role("link", name="CSL-JSON"))
    assert name.endswith(".csl.json")
    jsonschema.validate(json.loads(text), CSL_SCHEMA)
    assert errors == []


def test_starred_page_exports_the_stars(context: Any, base_url: str, artifacts: Path) -> None:
    page, errors = open_page(context, base_url + "/arxiv/cs.CL")
    cards = page.locator(CARD)
    starred = [cards.nth(0).get_attribute("data-id"), cards.nth(1).get_attribute("data-id")]
    page.evaluate(
        "ids => localStorage.setItem('papershelf.stars', "
        "JSON.stringify(Object.fromEntries(ids.map((id, i) => [id, Date.now() - i]))))",
        starred,
    )
    page.goto(base_url + "/starred")
    page.wait_for_selector("[data-starred][data-loaded]")
    form = page.locator("[data-starred-export]")
    assert form.is_visible()
    page.screenshot(path=str(artifacts / "export-starred.png"))
    name, text = download(page, form.get_by_role("link", name="BibTeX"))
    assert name == "papershelf-stars.bib"
    library = bibtexparser.parse_string(text)
    assert not library.failed_blocks
    assert sorted(e["eprint"] for e in library.entries) == sorted(starred)
    name, text = download(page, form.get_by_role("link", name="Markdown"))
    assert name == "papershelf-stars.md"
    assert text.startswith("# Starred papers\n") and text.count("](https://arxiv.org/abs/") == 2
    assert errors == []
    # Many stars go by the posted form instead of a link.
    many = [*starred, *(f"2501.{n:05d}" for n in range(1, 600))]
    page.evaluate(
        "ids => localStorage.setItem('papershelf.stars', "
        "JSON.stringify(Object.fromEntries(ids.map((id, i) => [id, Date.now() - i]))))",
        many,
    )
    page.reload()
    page.wait_for_selector("[data-starred][data-loaded]")
    assert not form.get_by_role("link", name="BibTeX").is_visible()
    name, text = download(page, form.get_by_role("button", name="CSL-JSON"))
    assert name == "papershelf-stars.csl.json"
    items = json.loads(text)
    jsonschema.validate(items, CSL_SCHEMA)
    # The ids this shelf lacks are left out (their cards' look-ups are not this test's).
    assert {i["number"] for i in items} == {f"arXiv:{i}" for i in starred}
