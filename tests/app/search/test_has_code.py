"""`has:code` / `-has:code` on every backend: the database engines (SQLite FTS5, PostgreSQL
tsvector) and the full-text index, on both databases; the flag follows the store's writes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine

from app.db.store import upsert_papers
from app.ingest.records import PaperRecord
from app.search import parse_query, search_papers
from app.settings import get_settings


def paper(n: int, abstract: str, comments: str | None = None, version: int = 1) -> PaperRecord:
    return PaperRecord(
        arxiv_id=f"2501.{n:05d}",
        title=f"Paper number {n}",
        abstract=abstract,
        authors=["Ada Lovelace"],
        primary_category="cs.LG",
        categories=["cs.LG"],
        version=version,
        comments=comments,
        first_submitted_at=datetime(2025, 1, n, 12, tzinfo=UTC),
    )


PAPERS = [
    paper(1, "Diffusion for images. Code: https://github.com/ada/diffusion."),
    paper(2, "Diffusion for text.", comments="Code at gitlab.com/ada/text-diffusion"),
    paper(3, "Diffusion for audio. Project page: https://ada.github.io/audio"),
    paper(4, "Flow matching, not the other thing."),
]


@pytest.fixture(params=["database", "index"])
def search_engine(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    monkeypatch.setenv("PAPERSHELF_SEARCH_ENGINE", request.param)
    monkeypatch.setenv("PAPERSHELF_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield request.param
    get_settings.cache_clear()


@pytest.fixture
def conn(engine: Engine, search_engine: str) -> Iterator[Connection]:
    with engine.begin() as c:
        upsert_papers(c, PAPERS)
    with engine.connect() as c:
        yield c


def found(conn: Connection, text: str) -> list[int]:
    page = search_papers(conn, text)
    return sorted(int(h.arxiv_id.split(".")[1]) for h in page.hits)


def test_has_code_keeps_the_papers_that_link_their_code(conn: Connection) -> None:
    assert found(conn, "diffusion has:code") == [1, 2]
    assert found(conn, "diffusion -has:code") == [3]
    # A filter alone lists the papers it keeps.
    assert found(conn, "has:code") == [1, 2]
    assert found(conn, "-has:code") == [3, 4]
    assert found(conn, "flow has:code") == []


def test_the_flag_follows_a_new_version(engine: Engine, conn: Connection) -> None:
    assert found(conn, "has:code") == [1, 2]
    conn.commit()
    with engine.begin() as c:
        upsert_papers(
            c,
            [
                paper(4, "Flow matching, with code at https://github.com/ada/flow.", version=2),
                paper(1, "Diffusion for images, code withdrawn.", version=2),
            ],
        )
    assert found(conn, "has:code") == [2, 4]
    assert found(conn, "diffusion -has:code") == [1, 3]


def test_has_code_in_the_query_syntax() -> None:
    query = parse_query("diffusion has:code")
    assert query.has_code is True and query.has_filters
    assert parse_query(query.canonical()) == query
    assert parse_query("-HAS:Code").has_code is False
    assert parse_query("has:code").canonical() == "has:code"
    unknown = parse_query("has:cats diffusion")
    assert unknown.has_code is None
    assert unknown.warnings == ["ignored has:cats (only has:tldr and has:code are known)"]


def test_dates_still_apply_with_has_code(conn: Connection) -> None:
    assert found(conn, f"has:code date:{date(2025, 1, 2)}..") == [2]
