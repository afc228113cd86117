"""Exports from the pages (`/export.*`) and the API (`/api/v1/export`) on SQLite and
PostgreSQL: every list (stars, search, day, venue) in every format, read back by real
parsers; real papers from the shared sample round-trip field by field; bad input is a 4xx."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import bibtexparser
import jsonschema
import pytest
import rispy
from bibtexparser.middlewares import SeparateCoAuthors
from fastapi.testclient import TestClient

from app.db import store
from app.db.engine import make_engine
from app.exports import bibtex_author, bibtex_text, csl_name
from app.ingest.jsonl import iter_listing
from app.ingest.records import PaperRecord, VenuePaperRecord
from app.settings import Settings
from tests.app.test_exports import CSL_SCHEMA
from tests.app.web.test_pages import D2, seed_records, site_app

SAMPLE = "arxiv/papers_cs_2025-08-05_2026-07-01.jsonl.gz"


def real_records(shared_data: Path, per_feature: int = 4) -> list[PaperRecord]:
    """Papers of the real sample with accents, math, braces, TeX specials and particles."""
    features: dict[str, Callable[[dict[str, object]], bool]] = {
        "accents": lambda r: any(not str(a).isascii() for a in r["authors"]),  # type: ignore[attr-defined]
        "math": lambda r: "$" in str(r["title"]),
        "braces": lambda r: "{" in str(r["title"]) + str(r["abstract"]),
        "specials": lambda r: any(c in str(r["abstract"]) for c in "%&#_"),
        "plain": lambda r: True,
    }
    picked: dict[str, list[bytes]] = {k: [] for k in features}
    with gzip.open(shared_data / SAMPLE, "rb") as fh:
        for line in fh:
            row = json.loads(line)
            for name, test in features.items():
                if len(picked[name]) < per_feature and test(row):
                    picked[name].append(line)
                    break
            if all(len(v) == per_feature for v in picked.values()):
                break
    lines = [line for group in picked.values() for line in group]
    return [r for r in iter_listing(lines, "sample") if isinstance(r, PaperRecord)]


@pytest.fixture(params=["sqlite", "postgresql"])
def client(
    request: pytest.FixtureRequest, site_settings: Callable[..., Settings], shared_data: Path
) -> Iterator[tuple[TestClient, list[PaperRecord]]]:
    env = {} if request.param == "sqlite" else {"DATABASE_URL": request.getfixturevalue("pg_url")}
    engine = make_engine(site_settings(**env).database_url_resolved)
    real = real_records(shared_data)
    venue = [
        VenuePaperRecord(
            venue="iclr2018",
            venue_paper_id="abc",
            title="Sparse attention for long documents",
            authors=["Ada Lovelace"],
            status="Poster",
        ),
        VenuePaperRecord(
            venue="iclr2018",
            venue_paper_id="def",
            title="<i>Unlinked</i> venue paper {",
            authors=["Bob"],
            site="javascript:alert(1)",
            status="Oral",
        ),
    ]
    with engine.begin() as conn:
        store.upsert_papers(conn, [*seed_records(), *real])
        store.upsert_venue(conn, "iclr2018", venue)
        store.link_venues(conn)
    engine.dispose()
    with TestClient(site_app()) as c:
        yield c, real


def _bib(text: str) -> list[bibtexparser.model.Entry]:
    library = bibtexparser.parse_string(text, append_middleware=[SeparateCoAuthors()])
    assert not library.failed_blocks
    keys = [e.key for e in library.entries]
    assert len(set(keys)) == len(keys)
    return list(library.entries)


def test_day_listing_downloads_in_every_format(client: tuple[TestClient, list]) -> None:
    c, _ = client
    query = {"list": "day", "expr": "cs.CL+cs.LG", "date": str(D2)}
    r = c.get("/export.bib", params=query)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"] == "application/x-bibtex; charset=utf-8"
    assert r.headers["content-disposition"] == (
        'attachment; filename="papershelf-cs.CL+cs.LG-2026-03-03.bib"'
    )
    entries = _bib(r.text)
    assert {e["eprint"] for e in entries} == {"2603.00001", "2603.00002"}
    evil = next(e for e in entries if e["eprint"] == "2603.00002")
    assert evil["author"] == [r"Mallory <b>Evil</b>"]
    ris = rispy.loads(c.get("/export.ris", params=query).text)
    assert [x["accession_number"] for x in ris] == [f"arXiv:{e['eprint']}" for e in entries]
    csl = c.get("/export.csl.json", params=query)
    assert csl.headers["content-type"].startswith("application/vnd.citationstyles.csl+json")
    jsonschema.validate(csl.json(), CSL_SCHEMA)
    md = c.get("/export.md", params=query)
    assert md.headers["content-type"] == "text/markdown; charset=utf-8"
    assert md.text.startswith("# cs.CL+cs.LG, 2026-03-03\n")
    assert "\\<script\\>" in md.text and "<script>" not in md.text
    # Hiding replacements, as the page's toggle does.
    day = {"list": "day", "expr": "cs.AI", "date": str(D2)}
    assert len(_bib(c.get("/export.bib", params=day).text)) == 1
    hidden = c.get("/export.bib", params={**day, "replacements": "hide"})
    assert hidden.status_code == 200 and _bib(hidden.text) == []
    # Only the papers with code, as the page's "Has code" filter shows them.
    coded = c.get("/export.bib", params={**query, "has_code": "1"})
    assert [e["eprint"] for e in _bib(coded.text)] == ["2603.00001"]
    api = c.get("/api/v1/export", params={**query, "format": "bibtex", "has_code": "true"})
    assert [e["eprint"] for e in _bib(api.text)] == ["2603.00001"]
    assert c.get("/export.bib", params={**query, "has_code": "maybe"}).status_code == 400


def test_real_papers_round_trip_every_field(client: tuple[TestClient, list]) -> None:
    c, real = client
    ids = ",".join(r.arxiv_id for r in real)
    base = {"list": "stars", "ids": ids}
    bib = _bib(c.get("/api/v1/export", params={**base, "format": "bibtex"}).text)
    ris = rispy.loads(c.get("/api/v1/export", params={**base, "format": "ris"}).text)
    csl = c.get("/api/v1/export", params={**base, "format": "csl-json"}).json()
    jsonschema.validate(csl, CSL_SCHEMA)
    assert len(bib) == len(ris) == len(csl) == len(real)
    for paper, entry, record, item in zip(real, bib, ris, csl, strict=True):
        title, abstract = " ".join(paper.title.split()), " ".join(paper.abstract.split())
        assert entry["eprint"] == paper.arxiv_id
        assert entry["primaryClass"] == paper.primary_category
        assert entry["title"] == bibtex_text(paper.title)
        assert entry["abstract"] == bibtex_text(paper.abstract)
        assert entry["author"] == [bibtex_author(a) for a in paper.authors]
        assert entry["url"] == f"https://arxiv.org/abs/{paper.arxiv_id}"
        assert entry["doi"] == f"10.48550/arXiv.{paper.arxiv_id}"
        year = entry["year"]
        assert record["title"] == title and record["abstract"] == abstract
        assert record["year"] == year and record["accession_number"] == f"arXiv:{paper.arxiv_id}"
        assert record["keywords"] == paper.categories
        assert len(record["authors"]) == len(paper.authors)
        assert item["title"] == title and item["abstract"] == abstract
        assert item["author"] == [csl_name(a) for a in paper.authors]
        assert item["number"] == f"arXiv:{paper.arxiv_id}" and item["publisher"] == "arXiv"
        assert str(item["issued"]["date-parts"][0][0]) == year
        if paper.comments:
            assert entry["comment"] == bibtex_text(paper.comments)
            assert f"Comments: {' '.join(paper.comments.split())}" in item["note"]
        # Names read back whole: given + family is the name as arXiv lists it.
        for name, parsed in zip(paper.authors, item["author"], strict=True):
            whole = parsed.get("literal") or f"{parsed['given']} {parsed['family']}"
            assert " ".join(whole.split()) == " ".join(name.split())
    assert any(not a.isascii() for p in real for a in p.authors)
    assert any("$" in p.title for p in real)


def test_search_stars_and_venue_lists(client: tuple[TestClient, list]) -> None:
    c, _ = client
    r = c.get("/export.ris", params={"list": "search", "q": "attention", "sort": "date"})
    assert r.status_code == 200, r.text[:300]
    found = {x["accession_number"] for x in rispy.loads(r.text)}
    assert {"arXiv:2603.00001", "arXiv:2603.00002"} <= found
    api = c.get("/api/v1/export", params={"format": "markdown", "list": "search", "q": "agents"})
    assert api.status_code == 200 and "Replaced paper on agents" in api.text
    stars = c.get("/export.bib", params={"list": "stars", "ids": "2603.00003,2501.99999"})
    assert stars.status_code == 200
    assert stars.headers["x-export-missing"] == "2501.99999"
    assert [e["eprint"] for e in _bib(stars.text)] == ["2603.00003"]
    # More stars than a URL takes go by a posted form.
    many = ",".join(f"2603.{n:05d}" for n in range(1, 700))
    assert c.get("/export.bib", params={"list": "stars", "ids": many}).status_code == 413
    venue = _bib(c.get("/export.bib", params={"list": "venue", "name": "iclr2018"}).text)
    assert {e.entry_type for e in venue} == {"misc", "inproceedings"}
    linked = next(e for e in venue if e.entry_type == "misc")
    assert linked["eprint"] == "2603.00001" and linked["note"] == "iclr2018 Poster"
    unlinked = next(e for e in venue if e.entry_type == "inproceedings")
    assert unlinked["title"] == r"<i>Unlinked</i> venue paper \textbraceleft{}"
    assert "url" not in unlinked  # a javascript: site is no link
    posted = c.post("/export.csl.json", data={"list": "stars", "ids": many})
    assert posted.status_code == 200
    assert {i["number"] for i in posted.json()} >= {"arXiv:2603.00001", "arXiv:2603.00004"}


def test_old_bibtex_route_uses_the_same_entries(client: tuple[TestClient, list]) -> None:
    c, _ = client
    r = c.get("/arxiv/2603.00001,2603.00004/bibtex")
    assert r.status_code == 200
    assert [e["eprint"] for e in _bib(r.text)] == ["2603.00001", "2603.00004"]


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/export.pdf?list=stars&ids=2603.00001", 404),
        ("/export.bib?list=everything", 400),
        ("/export.bib?list=stars&ids=not-an-id", 400),
        ("/export.bib?list=stars&ids=", 400),
        ("/export.bib?list=stars&ids=2501.99999", 404),
        ("/export.bib?list=day&expr=cs.NOPE", 400),
        ("/export.bib?list=day&expr=cs.CL&date=2026-13-01", 400),
        ("/export.bib?list=day&expr=cs.CL&date=2020-01-01", 404),
        ("/export.bib?list=day&expr=cs.CL&replacements=maybe", 400),
        ("/export.bib?list=search", 400),
        ("/export.bib?list=search&q=x&sort=best", 400),
        ("/export.bib?list=search&q=x&from=2026-03-04&to=2026-03-01", 400),
        ("/export.bib?list=venue&name=nope", 404),
    ],
)
def test_bad_page_input_is_a_4xx_page(
    client: tuple[TestClient, list], url: str, status: int
) -> None:
    r = client[0].get(url)
    assert r.status_code == status, r.text[:300]
    assert r.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"format": "pdf", "list": "stars", "ids": "2603.00001"}, 422),
        ({"format": "bibtex", "list": "all"}, 422),
        ({"format": "bibtex", "list": "stars", "ids": ",".join(["2603.00001"] * 1000)}, 422),
        (
            {
                "format": "bibtex",
                "list": "stars",
                "ids": ",".join(f"2603.{n:05d}" for n in range(1, 700)),
            },
            413,
        ),
        ({"format": "bibtex", "list": "stars", "ids": "nope"}, 400),
        ({"format": "ris", "list": "venue", "name": "nope"}, 404),
        ({"format": "ris", "list": "day", "expr": "cs.CL", "date": "yesterday"}, 400),
    ],
)
def test_bad_api_input_is_a_4xx_error(
    client: tuple[TestClient, list], params: dict[str, str], status: int
) -> None:
    r = client[0].get("/api/v1/export", params=params)
    assert r.status_code == status, r.text[:300]
    assert "message" in r.json()["error"]


def test_posting_something_else_than_a_form_is_refused(client: tuple[TestClient, list]) -> None:
    c, _ = client
    r = c.post("/export.bib", content=b'{"ids": "2603.00001"}')
    assert r.status_code == 415
    big = c.post("/export.bib", data={"list": "stars", "ids": "2603.00001," * 30_000})
    assert big.status_code == 413


def test_the_api_takes_a_long_list_of_ids_as_json(client: tuple[TestClient, list]) -> None:
    c, real = client
    ids = ["2603.00004", "2603.00001v2", *(r.arxiv_id for r in real[:600])]
    r = c.post("/api/v1/export", json={"format": "bibtex", "ids": [*ids, "2501.99999"]})
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"] == "application/x-bibtex; charset=utf-8"
    assert r.headers["x-export-missing"] == "2501.99999"
    entries = _bib(r.text)
    # In the order given, each paper once, every stored one there.
    assert [e["eprint"] for e in entries][:2] == ["2603.00004", "2603.00001"]
    assert len(entries) == len(ids)
    md = c.post("/api/v1/export", json={"format": "markdown", "ids": ["2603.00003"]})
    assert md.status_code == 200 and "Replaced paper on agents" in md.text


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"format": "bibtex", "ids": []}, 422, "invalid_parameter"),
        ({"format": "pdf", "ids": ["2603.00001"]}, 422, "invalid_parameter"),
        ({"format": "ris", "ids": ["2603.00001"], "list": "day"}, 422, "invalid_parameter"),
        ({"format": "ris", "ids": ["x" * 41]}, 422, "invalid_parameter"),
        ({"format": "ris", "ids": ["2603.00001"] * 5001}, 422, "invalid_parameter"),
        ({"format": "ris", "ids": ["not-an-id"]}, 400, "invalid_export"),
        ({"format": "ris", "ids": ["2501.99999"]}, 404, "not_found"),
    ],
)
def test_bad_posted_exports_are_clear_4xx_errors(
    client: tuple[TestClient, list], body: dict[str, object], status: int, code: str
) -> None:
    r = client[0].post("/api/v1/export", json=body)
    assert r.status_code == status, r.text[:300]
    assert r.json()["error"]["code"] == code
