"""The home page: its notices and the category picker (a plain GET form, /pick builds the
expression server-side; papershelf.js only enhances it)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.app.web.test_pages import assert_html, make_client


@pytest.fixture
def client(site_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from make_client(site_settings)


def test_home_keeps_its_features(client: TestClient) -> None:
    page = assert_html(client.get("/"))
    assert 'href="/arxiv/cs.AI">cs.AI</a>' in page  # followed categories
    assert "Latest days" in page and 'href="/arxiv/cs.CL?date=2026-03-03">cs.CL</a> 1' in page
    assert 'name="q"' in page and "Next arXiv announcement" in page
    searched = assert_html(client.get("/", params={"q": "attention"}))
    assert "2 matches" in searched and "Browse categories" in searched


def test_picker_lists_the_taxonomy(client: TestClient) -> None:
    page = assert_html(client.get("/"))
    assert '<form class="picker" action="/pick" method="get" data-picker>' in page
    # Groups and archives collapse; the groups holding followed categories start open.
    assert re.search(r'<details class="pick-group" open>\s*<summary>Computer Science', page)
    assert re.search(r'<details class="pick-group">\s*<summary>Physics', page)
    assert "<summary>Astrophysics <code>astro-ph</code>" in page
    # Every active category, once, with its name and three states.
    names = re.findall(r'<select name="c\.([^"]+)"', page)
    assert len(names) == len(set(names)) > 140
    assert {"cs.AI", "cs.CY", "math.NA", "hep-th", "astro-ph.CO", "econ.EM"} <= set(names)
    assert "cs.NA" not in names  # an alias shows once, under its canonical archive
    assert "<code>cs.AI</code> Artificial Intelligence" in page
    block = page.split('name="c.cs.CY"')[1].split("</select>")[0]
    assert 'value="off" selected' in block
    assert 'value="inc"' in block and 'value="exc"' in block


@pytest.mark.parametrize(
    ("params", "location"),
    [
        (
            [("c.cs.AI", "inc"), ("c.cs.CY", "exc"), ("c.cs.LG", "inc"), ("c.cs.CL", "off")],
            "/arxiv/cs.AI+cs.LG-cs.CY",
        ),
        ([("c.cs.NA", "inc"), ("q", "ignored")], "/arxiv/math.NA"),  # aliases resolve
        ([("c.hep-th", "inc"), ("c.hep-th", "exc"), ("c.gr-qc", "inc")], "/arxiv/gr-qc-hep-th"),
        ([("c.cs.AI", "inc"), ("c.cs.LG", "")], "/arxiv/cs.AI"),  # empty counts as off
    ],
)
def test_pick_redirects_to_the_expression(
    client: TestClient, params: list[tuple[str, str]], location: str
) -> None:
    r = client.get("/pick", params=params, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == location


def test_pick_then_the_listing(client: TestClient) -> None:
    params = [("c.cs.CL", "inc"), ("c.cs.LG", "inc"), ("c.cs.CY", "exc")]
    page = assert_html(client.get("/pick", params=params))
    assert "1 paper, 1 new" in page and "2603.00002" not in page


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([], "Include at least one category"),
        ([("c.cs.AI", "off"), ("c.cs.CY", "exc")], "Include at least one category"),
        ([("c.cs.XX", "inc")], "unknown category &#39;cs.XX&#39;"),
        ([("c.cs.AI", "yes")], "choose inc, exc or off"),
        ([("c.<script>", "inc")], "&lt;script&gt;"),
    ],
)
def test_pick_errors_are_html(
    client: TestClient, params: list[tuple[str, str]], message: str
) -> None:
    assert message in assert_html(client.get("/pick", params=params), 400)


def test_picker_script_enhancement(client: TestClient) -> None:
    js = client.get("/static/papershelf.js").text
    assert "form[data-picker]" in js and "data-picker-preview" in js
    assert "pk-state" in client.get("/static/papershelf.css").text
    assert "data-picker-preview" in assert_html(client.get("/"))
